// Command vmpooler keeps pools of ready virtual machines in vSphere and hands
// them out over a REST API compatible with Puppet's vmpooler, with all state
// in one bbolt file.
//
// Usage:
//
//	vmpooler [-config vmpooler.toml]          run the pooler
//	vmpooler simulator -listen ADDR -config F  serve a standalone vCenter simulator
//	vmpooler check -config F [-list-vms]       check the database file
//	vmpooler inventory -config F               list the VMs in every pool folder
//	vmpooler token list|revoke -config F ...   list or revoke API tokens (pooler stopped)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/httpapi"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
	"github.com/vmpooler/vmpooler/vsphere"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "vmpooler:", err)
		os.Exit(1)
	}
}

// run dispatches the subcommand; it returns when ctx is cancelled or on error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !isFlag(args[0]) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return runServe(ctx, args, stderr, nil)
	case "simulator":
		return runSimulator(ctx, args, stderr)
	case "check":
		return runCheck(args, stdout)
	case "inventory":
		return runInventory(ctx, args, stdout, stderr)
	case "token":
		return runToken(args, stdout, stderr)
	default:
		return fmt.Errorf("unknown command %q (want serve, simulator, check, inventory or token)", cmd)
	}
}

func isFlag(s string) bool { return len(s) > 0 && s[0] == '-' }

// loadFlags parses -config (and any extra flags) and loads the configuration.
func loadFlags(name string, args []string, stderr io.Writer, extra func(*flag.FlagSet)) (*Config, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "vmpooler.toml", "configuration file (TOML)")
	if extra != nil {
		extra(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return LoadConfig(*path)
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil || level == "" {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// runServe runs the pooler until ctx is cancelled. If ready is not nil it
// receives the API's address once it listens (tests use port 0).
func runServe(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) error {
	cfg, err := loadFlags("vmpooler", args, stderr, nil)
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.Global.LogLevel)

	st := store.New(cfg.Global.Database)
	st.Retention = pool.Hours(cfg.Global.DataTTL)
	if err := st.Open(); err != nil {
		return err
	}
	defer st.Close()

	prov, closeProv, err := openProvider(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer closeProv()

	au, err := auth.New(cfg.Auth, st, logger)
	if err != nil {
		return withPrefix("auth", err)
	}

	metrics := httpapi.NewMetrics()
	mgr := pool.NewManager(&cfg.Global.Config, st, prov, logger)
	mgr.Observer = metrics
	svc := pool.NewService(&cfg.Global.Config, st, logger)
	svc.TagFilter = cfg.TagFilter
	svc.Kick = mgr.Kick
	svc.Cloning = mgr.Cloning
	svc.Templates, _ = prov.(pool.TemplateFinder)
	handler := httpapi.New(httpapi.Config{
		SiteName: cfg.Global.SiteName,
		Redacted: cfg.redacted(),
		Metrics:  metrics,
		// The audit trail stays at info whatever log_level says.
		Audit:          newLogger(stderr, "info"),
		TrustedProxies: cfg.Global.TrustedProxies,
	}, svc, au, st, logger)

	ln, err := net.Listen("tcp", cfg.Global.Listen)
	if err != nil {
		return err
	}
	if err := mgr.Open(); err != nil {
		ln.Close()
		return err
	}
	defer mgr.Close()

	srv := newHTTPServer(handler)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(limitListener(ln, cfg.Global.MaxConnections)) }()
	logger.Info("vmpooler listening", "addr", ln.Addr().String(), "pools", len(cfg.Pools), "database", cfg.Global.Database)
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openProvider connects the configured provider: vSphere (or its embedded
// simulator), or the in-memory fake of [providers.fake].
func openProvider(ctx context.Context, cfg *Config, logger *slog.Logger) (pool.Provider, func() error, error) {
	if cfg.Providers.Fake != nil {
		logger.Warn("using the in-memory fake provider: VMs are not real and are lost at exit")
		return pool.NewFakeProvider(), func() error { return nil }, nil
	}
	prov := vsphere.New(cfg.Providers.Vsphere, cfg.Pools, logger)
	if err := prov.Open(ctx); err != nil {
		return nil, nil, withPrefix("vsphere", err)
	}
	return prov, prov.Close, nil
}

// runSimulator serves a standalone vCenter simulator holding the templates
// and folders of the config's pools, so a pooler can be restarted while
// "vCenter" keeps its state.
func runSimulator(ctx context.Context, args []string, stderr io.Writer) error {
	var listen, user, pass string
	var bootDelay time.Duration
	cfg, err := loadFlags("vmpooler simulator", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&listen, "listen", "127.0.0.1:8989", "address to serve the simulator on")
		fs.StringVar(&user, "username", "", "user name the simulator accepts (default user)")
		fs.StringVar(&pass, "password", "", "password the simulator accepts (default pass)")
		fs.DurationVar(&bootDelay, "boot-delay", time.Second, "time a VM takes to report a guest IP after power-on")
	})
	if err != nil {
		return err
	}
	return vsphere.Serve(ctx, listen, user, pass, cfg.Pools, bootDelay, newLogger(stderr, cfg.Global.LogLevel))
}

// runCheck opens the database, runs bbolt's consistency check and the
// store's invariants, and with -list-vms prints every live VM.
func runCheck(args []string, stdout io.Writer) error {
	var list bool
	cfg, err := loadFlags("vmpooler check", args, stdout, func(fs *flag.FlagSet) {
		fs.BoolVar(&list, "list-vms", false, "print the hostname of every live VM")
	})
	if err != nil {
		return err
	}
	st := store.New(cfg.Global.Database)
	if err := st.Open(); err != nil {
		return err
	}
	defer st.Close()
	if err := st.Check(); errors.Is(err, store.ErrCorrupt) {
		return err // names the file and what to do
	} else if err != nil {
		return fmt.Errorf("check %s: %w", cfg.Global.Database, err)
	}
	if list {
		for _, p := range cfg.Pools {
			vms, err := st.ListPool(p.Name)
			if err != nil {
				return err
			}
			for _, vm := range vms {
				fmt.Fprintln(stdout, vm.Hostname)
			}
		}
		return nil
	}
	fmt.Fprintf(stdout, "%s: ok\n", cfg.Global.Database)
	return nil
}

// runInventory prints the name of every VM in every pool's folder.
func runInventory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadFlags("vmpooler inventory", args, stderr, nil)
	if err != nil {
		return err
	}
	prov, closeProv, err := openProvider(ctx, cfg, newLogger(stderr, cfg.Global.LogLevel))
	if err != nil {
		return err
	}
	defer closeProv()
	for _, p := range cfg.Pools {
		vms, err := prov.List(ctx, p.Datacenter, p.Folder)
		if errors.Is(err, pool.ErrNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("pool %s: %w", p.Name, err)
		}
		for _, vm := range vms {
			fmt.Fprintln(stdout, vm.Name)
		}
	}
	return nil
}
