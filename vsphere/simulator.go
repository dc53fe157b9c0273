package vsphere

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"

	"github.com/vmpooler/vmpooler/pool"
)

// simServer is govmomi's vCenter simulator serving HTTPS on loopback,
// with the pools' inventory and a guest agent that boots powered-on VMs.
type simServer struct {
	model  *simulator.Model
	server *simulator.Server
	agent  *guestAgent
	dir    string // backing directories of the datastores we add
}

// startSimulator builds the VPX model (one datacenter named dc, one
// cluster of 3 hosts and no standalone host, so that pools need no
// clone_target; a datastore), creates the pools'
// templates, folders, datastores and clone targets in it through an
// in-memory client, then serves it on listen with the given credentials.
func startSimulator(ctx context.Context, listen, user, pass, dc string, pools []pool.PoolConfig, bootDelay time.Duration, logger *slog.Logger) (*simServer, error) {
	m := simulator.VPX()
	m.Host = 0          // one place to clone to (the cluster), so configs need no clone_target
	m.Machine = 1       // one source VM per resource pool, cloned into templates
	m.Autostart = false // templates must be powered off
	if err := m.Create(); err != nil {
		return nil, fmt.Errorf("vsphere: simulator: create the model: %w", err)
	}
	s := &simServer{model: m}
	dir, err := os.MkdirTemp("", "vmpooler-vcsim-")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("vsphere: simulator: %w", err)
	}
	s.dir = dir
	c, err := vim25.NewClient(ctx, m.Service)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("vsphere: simulator: in-memory client: %w", err)
	}
	setup := &simSetup{c: c, dc: dc, pools: pools, dir: dir, logger: logger}
	if err := setup.run(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("vsphere: simulator: %w", err)
	}
	s.agent = newGuestAgent(m.Service.Context, bootDelay)
	m.Map().AddHandler(s.agent)

	m.Service.Listen = &url.URL{Host: listen, User: url.UserPassword(user, pass)}
	m.Service.TLS = new(tls.Config) // self-signed: clients need insecure
	if s.server, err = newServer(m.Service); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// newServer starts the HTTPS server; the simulator panics when it cannot
// listen, which becomes an error here.
func newServer(svc *simulator.Service) (srv *simulator.Server, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("vsphere: simulator: %v", r)
		}
	}()
	return svc.NewServer(), nil
}

// URL returns the server's SDK URL with its credentials.
func (s *simServer) URL() *url.URL {
	u := *s.server.URL
	return &u
}

// Close stops the guest agent and the server and removes temp files.
func (s *simServer) Close() {
	if s.agent != nil {
		s.agent.stop()
		s.model.Map().RemoveHandler(s.agent)
	}
	if s.server != nil {
		s.server.Close()
	}
	s.model.Remove()
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
	}
}

// Serve runs the simulator stand-alone on listen (default
// 127.0.0.1:8989) with the pools' templates and folders until ctx is
// cancelled. Empty credentials default to "user"/"pass". It is a test
// simulator: it logs its URL and credentials, password included, so that
// a pooler or govc can be pointed at it. Simulated VMs report VMware Tools
// running, an IP and their hostname bootDelay after power-on.
func Serve(ctx context.Context, listen, username, password string, pools []pool.PoolConfig, bootDelay time.Duration, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if listen == "" {
		listen = "127.0.0.1:8989"
	}
	if username == "" {
		username = DefaultSimUser
	}
	if password == "" {
		password = DefaultSimPassword
	}
	if bootDelay <= 0 {
		bootDelay = time.Second
	}
	dc := ""
	for _, p := range pools {
		if p.Datacenter != "" {
			dc = p.Datacenter
			break
		}
	}
	logger = logger.With("component", "vcsim")
	s, err := startSimulator(ctx, listen, username, password, dc, pools, bootDelay, logger)
	if err != nil {
		return err
	}
	defer s.Close()
	logger.Info("vCenter simulator listening (a test simulator: its credentials are logged on purpose)",
		"url", redactURL(s.URL()), "username", username, "password", password,
		"insecure", true, "pools", len(pools), "boot_delay", bootDelay)
	<-ctx.Done()
	logger.Info("vCenter simulator stopping")
	return nil
}
