// Package etcdtest runs an embedded etcd for tests: Start gives a test its
// own server, StartCluster its own cluster of several members (which it may
// stop, kill and restart), Engine an engine under a prefix of its own on one
// server shared by the whole test binary. It does not import package store,
// so the store's own tests may use it.
package etcdtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/vmpooler/vmpooler/store/etcd"
)

// Option changes the configuration of a server before it starts.
type Option func(*embed.Config)

// MaxTxnOps sets the server's --max-txn-ops (default 128).
func MaxTxnOps(n uint) Option {
	return func(c *embed.Config) { c.MaxTxnOps = n }
}

// Server is a running embedded etcd with one member.
type Server struct {
	Etcd     *embed.Etcd
	Endpoint string // host:port of its client listener on loopback

	stop sync.Once
}

// Stop stops the server; later calls do nothing.
func (s *Server) Stop() {
	s.stop.Do(s.Etcd.Close)
}

// Endpoints returns the server's client endpoints, for etcd.Config.
func (s *Server) Endpoints() []string { return []string{s.Endpoint} }

// readyTimeout bounds the wait for a server to serve.
const readyTimeout = 30 * time.Second

// Start starts a single-member etcd on loopback with its data in a
// temporary directory of tb, quiet (no log), without fsync (tests lose
// nothing real), and stops it when tb's test ends.
func Start(tb testing.TB, opts ...Option) *Server {
	tb.Helper()
	s, err := start(tb.TempDir(), opts...)
	if err != nil {
		tb.Fatalf("etcdtest: %v", err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// start starts a server in dir, picking free ports again if another
// process took one between the pick and the bind.
func start(dir string, opts ...Option) (*Server, error) {
	var err error
	for range 5 {
		var s *Server
		if s, err = startOnce(dir, opts...); err == nil || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
		// The failed start left its files: start clean.
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	return nil, err
}

func startOnce(dir string, opts ...Option) (*Server, error) {
	// embed cannot listen on port 0 and tell the port: take free ports
	// from the kernel, close them and give them to etcd.
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	curl := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", ports[0])}
	purl := url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", ports[1])}

	cfg := newConfig("etcdtest", dir, curl, purl, "", opts)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	if err := waitReady(e, readyTimeout); err != nil {
		return nil, err
	}
	return &Server{Etcd: e, Endpoint: curl.Host}, nil
}

// newConfig returns the configuration of member name of a cluster
// (initialCluster, as in --initial-cluster; empty: the member alone) with
// its data in dir, quiet and without fsync, and opts applied.
func newConfig(name, dir string, curl, purl url.URL, initialCluster string, opts []Option) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.ListenClientUrls = []url.URL{curl}
	cfg.AdvertiseClientUrls = []url.URL{curl}
	cfg.ListenPeerUrls = []url.URL{purl}
	cfg.AdvertisePeerUrls = []url.URL{purl}
	cfg.InitialCluster = initialCluster
	if initialCluster == "" {
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	}
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.UnsafeNoFsync = true
	cfg.MaxTxnOps = etcd.DefaultMaxTxnOps
	for _, o := range opts {
		o(cfg)
	}
	return cfg
}

// waitReady waits at most d until e serves; it closes e unless it serves.
func waitReady(e *embed.Etcd, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-e.Server.ReadyNotify():
		return nil
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcd failed before it was ready: %v", err)
	case <-t.C:
		hardStop(e)
		return errors.New("etcd was not ready within " + d.String())
	}
}

// hardStop stops e's raft member at once, without handing its leadership
// over, and then the rest. It also stops a member that does not serve yet
// (Close alone would wait for it to serve).
func hardStop(e *embed.Etcd) {
	e.Server.HardStop()
	e.Close()
}

// freePorts returns n ports free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]string, error) {
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close() // all open until every port is picked: n different ports
		_, port, _ := net.SplitHostPort(l.Addr().String())
		ports = append(ports, port)
	}
	return ports, nil
}

// The server shared by Engine within one test binary.
var (
	shared     *Server
	sharedDir  string
	sharedErr  error
	sharedOnce sync.Once
	sharedMu   sync.Mutex
	prefixes   atomic.Int64
)

// Shared returns the server of this test binary, starting it on the first
// call. Its data are in a temporary directory that Shutdown removes (see
// Run); it runs until the binary ends or Shutdown.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedOnce.Do(func() {
		sharedMu.Lock()
		defer sharedMu.Unlock()
		sharedDir, sharedErr = os.MkdirTemp("", "vmpooler-etcdtest-")
		if sharedErr == nil {
			shared, sharedErr = start(sharedDir)
		}
		if sharedErr != nil && sharedDir != "" {
			os.RemoveAll(sharedDir)
		}
	})
	if sharedErr != nil {
		tb.Fatalf("etcdtest: shared server: %v", sharedErr)
	}
	return shared
}

// Shutdown stops the shared server, if it was started, and removes its
// data. Call it after the tests (Run does).
func Shutdown() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		shared.Stop()
	}
	if sharedDir != "" {
		os.RemoveAll(sharedDir)
	}
}

// Run runs the tests of m and then Shutdown: func TestMain(m *testing.M) {
// os.Exit(etcdtest.Run(m)) }.
func Run(m *testing.M) int {
	code := m.Run()
	Shutdown()
	return code
}

// Engine opens an engine on the shared server under a prefix of its own
// (name, or the test's name, and a number), so that tests do not see each
// other's keys; it is closed when tb's test ends.
func Engine(tb testing.TB, name string) *etcd.Engine {
	tb.Helper()
	return EngineConfig(tb, etcd.Config{Prefix: name})
}

// EngineConfig is Engine with more of the configuration set: Endpoints
// are the shared server's, and Prefix is made unique as by Engine.
func EngineConfig(tb testing.TB, cfg etcd.Config) *etcd.Engine {
	tb.Helper()
	s := Shared(tb)
	name := strings.Trim(cfg.Prefix, "/")
	if name == "" {
		name = strings.NewReplacer("/", "_", " ", "_").Replace(tb.Name())
	}
	cfg.Endpoints = s.Endpoints()
	cfg.Prefix = fmt.Sprintf("test/%s-%d/", name, prefixes.Add(1))
	return open(tb, cfg)
}

// StartEngine starts a server of the test's own, as Start does with opts,
// and opens an engine on it with cfg (its Endpoints set to the server's),
// for a test that stops or compacts the server. The engine is closed when
// tb's test ends, before the server stops.
func StartEngine(tb testing.TB, cfg etcd.Config, opts ...Option) (*Server, *etcd.Engine) {
	tb.Helper()
	s := Start(tb, opts...)
	cfg.Endpoints = s.Endpoints()
	return s, open(tb, cfg)
}

// open opens an engine with cfg, or fails tb, and closes it when tb's test
// ends.
func open(tb testing.TB, cfg etcd.Config) *etcd.Engine {
	tb.Helper()
	e, err := etcd.Open(cfg)
	if err != nil {
		tb.Fatalf("etcdtest: %v", err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}
