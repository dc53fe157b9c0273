package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"google.golang.org/grpc"
)

// Raft timing of a Cluster's members: etcd's defaults, which a loaded
// machine with two cores keeps without spurious elections.
const (
	clusterTickMs     = 100
	clusterElectionMs = 1000
)

// Cluster is an etcd cluster of several embedded members in this process,
// on loopback. A member can be stopped and started again, with its data,
// to see what the cluster and its clients do without it.
type Cluster struct {
	tb   testing.TB
	opts []Option

	mu      sync.Mutex
	initial string // --initial-cluster: every member's name=peer URL
	members []*member
}

// member is one member of a Cluster; etcd is nil while it is stopped.
type member struct {
	name, dir  string
	curl, purl url.URL
	etcd       *embed.Etcd

	mu    sync.Mutex
	grpcs []*grpc.Server // the client servers of etcd, once it serves
}

// startEtcd starts m.
func (m *member) startEtcd(cfg *embed.Config) (err error) {
	m.mu.Lock()
	m.grpcs = nil
	m.mu.Unlock()
	m.etcd, err = embed.StartEtcd(cfg)
	return err
}

// waitReady waits until m serves, at most until deadline, and until its
// gRPC server, created just after, is known to cutClients; it stops m if
// m does not serve.
func (m *member) waitReady(deadline time.Time) error {
	if err := waitReady(m.etcd, time.Until(deadline)); err != nil {
		m.etcd = nil // stopped by waitReady
		return err
	}
	for {
		m.mu.Lock()
		n := len(m.grpcs)
		m.mu.Unlock()
		if n > 0 || time.Now().After(deadline) {
			return nil // without it, Stop may take longer: no failure
		}
		time.Sleep(time.Millisecond)
	}
}

// cutClients stops m's gRPC servers at once: the clients' requests and
// watches fail and they turn to other members. Close alone would wait up
// to its request timeout (7s) for the clients' watch streams to end.
func (m *member) cutClients() {
	m.mu.Lock()
	grpcs := m.grpcs
	m.grpcs = nil
	m.mu.Unlock()
	for _, s := range grpcs {
		s.Stop()
	}
}

// stop stops m, if it runs: at once and without handing its leadership
// over when kill, else as etcd stops on SIGTERM.
func (m *member) stop(kill bool) {
	if e := m.take(); e != nil {
		m.halt(e, kill)
	}
}

// take returns m's etcd, now stopping: nil from now on.
func (m *member) take() *embed.Etcd {
	e := m.etcd
	m.etcd = nil
	return e
}

// halt stops e, m's etcd (see stop).
func (m *member) halt(e *embed.Etcd, kill bool) {
	if kill {
		e.Server.HardStop()
	}
	m.cutClients()
	e.Close()
	<-e.Server.StopNotify()
}

// StartCluster starts a cluster of n members on loopback, each with its
// data in a temporary directory of tb, quiet and without fsync like Start,
// waits until every member serves, and stops them all when tb's test ends.
// The options apply to every member, also when it is restarted.
func StartCluster(tb testing.TB, n int, opts ...Option) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("etcdtest: a cluster of %d members", n)
	}
	c := &Cluster{tb: tb, opts: opts}
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = tb.TempDir()
	}
	var err error
	for range 5 {
		if err = c.start(dirs); err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		// Another process took a port between the pick and the bind:
		// start clean on other ports.
		for _, dir := range dirs {
			if err := clearDir(dir); err != nil {
				tb.Fatalf("etcdtest: %v", err)
			}
		}
	}
	if err != nil {
		tb.Fatalf("etcdtest: cluster of %d: %v", n, err)
	}
	tb.Cleanup(c.stopAll)
	return c
}

// clearDir empties dir.
func clearDir(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(dir, 0o700)
}

// start picks ports and starts a member in each of dirs; on an error it
// stops the members it started.
func (c *Cluster) start(dirs []string) error {
	ports, err := freePorts(2 * len(dirs))
	if err != nil {
		return err
	}
	c.members = make([]*member, len(dirs))
	var initial []string
	for i, dir := range dirs {
		m := &member{
			name: fmt.Sprintf("etcdtest%d", i),
			dir:  dir,
			curl: url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", ports[2*i])},
			purl: url.URL{Scheme: "http", Host: net.JoinHostPort("127.0.0.1", ports[2*i+1])},
		}
		c.members[i] = m
		initial = append(initial, m.name+"="+m.purl.String())
	}
	c.initial = strings.Join(initial, ",")

	// A new member waits for the others before it serves: start all,
	// then wait for each.
	for i, m := range c.members {
		if err = m.startEtcd(c.config(m)); err != nil {
			c.stopAll()
			return fmt.Errorf("member %d: %w", i, err)
		}
	}
	deadline := time.Now().Add(readyTimeout)
	for i, m := range c.members {
		if err := m.waitReady(deadline); err != nil {
			c.stopAll()
			return fmt.Errorf("member %d: %w", i, err)
		}
	}
	return nil
}

// config returns the configuration of m. The cluster state is always
// "new": a member whose data directory holds its log ignores it (and the
// initial cluster) and rejoins with what the log says.
func (c *Cluster) config(m *member) *embed.Config {
	cfg := newConfig(m.name, m.dir, m.curl, m.purl, c.initial, nil)
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.InitialClusterToken = "etcdtest-cluster"
	cfg.TickMs = clusterTickMs
	cfg.ElectionMs = clusterElectionMs
	for _, o := range c.opts {
		o(cfg)
	}
	register := cfg.ServiceRegister
	cfg.ServiceRegister = func(s *grpc.Server) {
		if register != nil {
			register(s)
		}
		m.mu.Lock()
		m.grpcs = append(m.grpcs, s)
		m.mu.Unlock()
	}
	return cfg
}

// stopAll stops every running member at once, without handing the
// leadership over (the others are stopping too).
func (c *Cluster) stopAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	for _, m := range c.members {
		if e := m.take(); e != nil {
			wg.Go(func() { m.halt(e, true) })
		}
	}
	wg.Wait()
}

// Endpoints returns the client endpoints (host:port) of all members, in
// the order of their numbers, for etcd.Config; a stopped member's stays
// in the list.
func (c *Cluster) Endpoints() []string {
	eps := make([]string, len(c.members))
	for i, m := range c.members {
		eps[i] = m.curl.Host
	}
	return eps
}

// Member returns member i's embedded etcd, nil while it is stopped.
func (c *Cluster) Member(i int) *embed.Etcd {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.member(i).etcd
}

// member returns member i, failing the test if there is none.
func (c *Cluster) member(i int) *member {
	if i < 0 || i >= len(c.members) {
		c.tb.Fatalf("etcdtest: no member %d in a cluster of %d", i, len(c.members))
	}
	return c.members[i]
}

// Leader returns the number of the member that is the raft leader, as
// the running members see it, or -1 if none knows of one among them.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.members {
		if m.etcd == nil {
			continue
		}
		lead := m.etcd.Server.Leader()
		for j, o := range c.members {
			if o.etcd != nil && o.etcd.Server.MemberID() == lead {
				return j
			}
		}
	}
	return -1
}

// Stop stops the members given by number, one after the other, as etcd
// stops on SIGTERM: a leader hands its leadership to another member first,
// so that the cluster does not wait for an election. Unlike etcd, a member
// does not wait for its clients' open requests and watches: it cuts them.
// Stop returns when the members have stopped; stopping a stopped member
// does nothing.
func (c *Cluster) Stop(members ...int) {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, i := range members {
		c.member(i).stop(false)
	}
}

// Kill stops the members given by number at once, as a crash would: the
// connections of their peers and clients break and a leader hands nothing
// over, so that the others elect a leader only once the election timeout
// has passed without news from it. Killing a stopped member does nothing.
func (c *Cluster) Kill(members ...int) {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var wg sync.WaitGroup
	for _, i := range members {
		m := c.member(i)
		if e := m.take(); e != nil {
			wg.Go(func() { m.halt(e, true) })
		}
	}
	wg.Wait()
}

// Restart starts the stopped members given by number again, with their
// names, data, ports and cluster, and waits until they serve. A member
// serves once a quorum is up: restart together members that make the
// quorum only together. Restarting a running member does nothing.
func (c *Cluster) Restart(members ...int) {
	c.tb.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var started []*member
	fail := func(format string, args ...any) {
		for _, m := range started {
			m.stop(true)
		}
		c.tb.Fatalf("etcdtest: "+format, args...)
	}
	for _, i := range members {
		m := c.member(i)
		if m.etcd != nil {
			continue
		}
		var err error
		// The ports are the cluster's: if another process took one
		// meanwhile, only waiting may help.
		for try := 0; ; try++ {
			err = m.startEtcd(c.config(m))
			if err == nil || try == 20 || !strings.Contains(err.Error(), "address already in use") {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			fail("restart of member %d: %v", i, err)
		}
		started = append(started, m)
	}
	deadline := time.Now().Add(readyTimeout)
	for _, m := range started {
		if err := m.waitReady(deadline); err != nil {
			fail("restart of %s: %v", m.name, err)
		}
	}
}
