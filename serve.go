package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/httpapi"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
	"github.com/vmpooler/vmpooler/store/etcd"
	"github.com/vmpooler/vmpooler/vsphere"
)

// shutdownGrace bounds how long SIGTERM waits for in-flight API requests.
const shutdownGrace = 10 * time.Second

// daemon is a running pooler: what reload, backup and shutdown act on.
type daemon struct {
	path   string // the configuration file, absolute
	logger *slog.Logger
	audit  *slog.Logger // the audit trail, always at info
	level  *slog.LevelVar
	st     *store.Store
	auth   *auth.Auth
	svc    *pool.Service
	mgr    *pool.Manager // nil on etcd: see group
	group  *replicas     // on etcd: this replica in the group, whose leader runs the manager
	addr   string        // the API's address
	grace  time.Duration

	reloadMu sync.Mutex             // one reload at a time
	cfg      atomic.Pointer[Config] // the configuration in force
	backupMu sync.Mutex             // one scheduled or requested backup at a time
}

// runServe runs the pooler until ctx is cancelled. If ready is not nil it
// receives the daemon once the API listens (tests use port 0 and call
// reload directly, as SIGHUP does).
func runServe(ctx context.Context, args []string, stderr io.Writer, ready chan<- *daemon) error {
	// Catch SIGHUP from the start: a reload asked for while the pooler is
	// still starting is done once it listens, instead of killing it.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	fs := newFlags("vmpooler", "vmpooler [serve] [-config vmpooler.toml]", stderr)
	path := fs.String("config", "vmpooler.toml", "configuration file (TOML); relative paths in it are relative to its directory")
	if err := fs.Parse(args); err != nil {
		return err
	} else if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (commands come first: vmpooler -h)", fs.Args())
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	d := &daemon{path: cfg.file, level: new(slog.LevelVar), grace: shutdownGrace}
	lvl, _ := parseLevel(cfg.Global.LogLevel)
	d.level.Set(lvl)
	d.logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: d.level}))
	// The audit trail stays at info whatever log_level says.
	d.audit = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d.cfg.Store(cfg)
	return d.serve(ctx, cfg, hup, ready)
}

func (d *daemon) serve(ctx context.Context, cfg *Config, hup <-chan os.Signal, ready chan<- *daemon) error {
	logger := d.logger
	defer logger.Info("vmpooler stopped")
	d.logStart(cfg)
	if err := d.openStore(cfg); err != nil {
		return err
	}
	defer d.st.Close()
	logger.Info("database open", "database", cfg.databaseName(), "instance", d.st.Instance(), "adopted", d.st.Adopted())

	prov, closeProv, backend, err := startProvider(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeProv()

	if d.auth, err = auth.New(cfg.Auth, d.st, logger); err != nil {
		return withPrefix("auth", err)
	}
	metrics := httpapi.NewMetrics()
	newManager := d.wire(cfg, prov, backend, metrics)
	api := httpapi.New(httpapi.Config{
		SiteName:       cfg.Global.SiteName,
		Redacted:       func() any { return d.cfg.Load().redacted() },
		Metrics:        metrics,
		Audit:          d.audit,
		TrustedProxies: cfg.Global.TrustedProxies,
		// restart-only, like site_name (reload.go)
		DashboardPrivate: !cfg.Global.dashboardPublic(),
	}, d.svc, d.auth, d.st, logger)

	ln, err := net.Listen("tcp", cfg.Global.Listen)
	if err != nil {
		return err
	}
	d.addr = ln.Addr().String()
	if cfg.onEtcd() {
		// Before the API serves: its service reads d.group (see wire).
		d.group = newReplicas(cfg, d.st.Engine.(*etcd.Engine), d.addr, logger)
	}
	admin, err := d.listenAdmin(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	defer admin.Close()
	if d.mgr != nil {
		if err := d.mgr.Open(); err != nil {
			ln.Close()
			return err
		}
		defer d.mgr.Close() // after the API has stopped: see shutdown
	}

	dr := newDrain(api)
	baseCtx, cancelRequests := context.WithCancel(context.Background())
	defer cancelRequests()
	srv := newHTTPServer(dr)
	srv.BaseContext = func(net.Listener) context.Context { return baseCtx }
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(limitListener(ln, cfg.Global.MaxConnections)) }()
	go d.backupLoop(baseCtx)
	if d.group != nil {
		groupCtx, leave := context.WithCancel(ctx) // SIGTERM: the leader resigns at once
		defer leave()
		d.group.start(groupCtx, d, prov, newManager)
		defer d.group.wait() // after the API has stopped, as the manager
		d.serveWaitersOnChange(groupCtx)
	}

	logger.Info("vmpooler listening", "addr", d.addr, "pools", len(cfg.Pools), "database", cfg.databaseName(), "config", d.path)
	if ready != nil {
		ready <- d
	}
	for {
		select {
		case err := <-errc:
			return err
		case <-hup:
			d.reload()
			continue
		case <-ctx.Done():
		}
		break
	}
	return d.shutdown(srv, dr, cancelRequests)
}

// logStart logs what the pooler starts with.
func (d *daemon) logStart(cfg *Config) {
	attrs := []any{"version", versionString(), "config", d.path, "database", cfg.databaseName()}
	if cfg.Auth != nil && cfg.Auth.File != "" {
		attrs = append(attrs, "auth_file", cfg.Auth.File)
	}
	if cfg.Global.BackupDir != "" {
		attrs = append(attrs, "backup_dir", cfg.Global.BackupDir)
	}
	d.logger.Info("vmpooler starting", append(attrs, "pid", os.Getpid())...)
	for _, w := range cfg.Warnings {
		d.logger.Warn("config: " + w)
	}
}

// wire makes the service the API serves, and returns how to make a pool
// manager. On a bbolt file it makes the manager now (d.mgr); on etcd the
// manager is the one of whichever replica leads (d.group, set before the
// API serves), made by the returned function when this replica leads.
func (d *daemon) wire(cfg *Config, prov pool.Provider, backend func() (bool, string), metrics *httpapi.Metrics) func(pool.Store, pool.Provider) *pool.Manager {
	d.svc = pool.NewService(&cfg.Global.Config, d.st, d.logger)
	d.svc.SetConfig(&cfg.Global.Config, cfg.TagFilter)
	d.svc.Backend = backend
	d.svc.Templates, _ = prov.(pool.TemplateFinder)
	newManager := func(st pool.Store, p pool.Provider) *pool.Manager {
		cur := d.cfg.Load()
		m := pool.NewManager(ownConfig(&cur.Global.Config), st, p, d.logger)
		m.Observer = metrics
		m.JobTimeout = pool.Minutes(cur.Global.JobTimeout)
		m.PurgeTokens = d.auth.PurgeExpired
		m.Demand = d.svc.WaitDemand
		m.OnReady = d.svc.ServeWaiters
		m.AfterPass = d.svc.PassDone
		return m
	}
	if cfg.onEtcd() {
		d.svc.Kick = func() { d.group.kick() }
		d.svc.Cloning = func() int {
			if m := d.group.mgr.Load(); m != nil {
				return m.Cloning()
			}
			return 0
		}
		d.svc.Health = func() map[string]pool.PoolHealth { return d.group.Health() }
		d.svc.Replica = func() pool.ReplicaStatus { return d.group.status() }
		return newManager
	}
	d.mgr = newManager(d.st, prov)
	d.svc.Kick = d.mgr.Kick
	d.svc.Cloning = d.mgr.Cloning
	d.svc.Health = d.mgr.Health
	return newManager
}

// serveWaitersOnChange serves this replica's waiting checkouts and
// ondemand long-polls whenever its store sees another replica's write,
// until ctx ends: a VM may have become ready for one of them.
func (d *daemon) serveWaitersOnChange(ctx context.Context) {
	changed := make(chan struct{}, 1)
	d.st.OnChange(func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changed:
				d.svc.ServeWaiters() // a VM may be ready for a waiter of this replica
				d.svc.PassDone()     // ondemand long-polls look again
			}
		}
	}()
}

// openStore opens the database (see openDatabase).
func (d *daemon) openStore(cfg *Config) (err error) {
	d.st, err = openDatabase(cfg, d.logger)
	return err
}

// shutdown stops the API: no new connections, in-flight requests get up to
// d.grace to finish; those still running then are answered 503 (JSON) and
// their contexts cancelled. The manager is stopped afterwards by serve's
// deferred Close, between its steps: every step is a store transaction, and
// clones in flight stay pending for the next start.
func (d *daemon) shutdown(srv *http.Server, dr *drain, cancelRequests context.CancelFunc) error {
	d.logger.Info("shutting down: finishing in-flight requests", "bound", d.grace)
	ctx, cancel := context.WithTimeout(context.Background(), d.grace)
	defer cancel()
	err := srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		n := dr.cut()
		cancelRequests()
		dr.wait(time.Second) // let them return, so their 503 is delivered whole
		d.logger.Warn("requests still running at the shutdown bound were answered 503", "count", n, "bound", d.grace)
		err = srv.Close()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	d.logger.Info("API stopped; stopping the pool manager (clones in flight stay pending for the next start)")
	return nil
}

// openProvider connects the configured provider: vSphere (or its embedded
// simulator), or the in-memory fake of [providers.fake].
func openProvider(ctx context.Context, cfg *Config, logger *slog.Logger) (pool.Provider, func() error, error) {
	if cfg.Providers.Fake != nil {
		logger.Warn("using the in-memory fake provider: VMs are not real and are lost at exit")
		return newFakeProvider(cfg), func() error { return nil }, nil
	}
	prov := vsphere.New(cfg.Providers.Vsphere, cfg.Pools, logger)
	if err := prov.Open(ctx); err != nil {
		return nil, nil, withPrefix("vsphere", err)
	}
	return prov, prov.Close, nil
}

// startProvider is openProvider for the server: vSphere connects in the
// background (Start), so that the API serves at once while vCenter is
// down; backend reports the connection for /status and /healthcheck (nil
// for the fake provider).
func startProvider(ctx context.Context, cfg *Config, logger *slog.Logger) (prov pool.Provider, closeFn func() error, backend func() (bool, string), err error) {
	if cfg.Providers.Fake != nil {
		prov, closeFn, err = openProvider(ctx, cfg, logger)
		return prov, closeFn, nil, err
	}
	vp := vsphere.New(cfg.Providers.Vsphere, cfg.Pools, logger)
	if err := vp.Start(ctx); err != nil {
		return nil, nil, nil, withPrefix("vsphere", err)
	}
	backend = func() (bool, string) {
		ok, reason, _ := vp.Connection()
		return ok, reason
	}
	return vp, vp.Close, backend, nil
}
