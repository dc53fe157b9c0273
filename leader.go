package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
	"github.com/vmpooler/vmpooler/store/etcd"
)

// With the state on etcd, several replicas serve the API and exactly one
// of them, elected through etcd, runs the pool manager (store/etcd
// leader.go for the election and its fence). A replica that leads runs a
// manager on a store whose every write is fenced by its term, and a
// provider that refuses every vSphere call once the term is not fresh;
// when the term ends (lease stale or lost, shutdown) it stops the manager
// and resigns, and campaigns again. Every replica:
//   - wakes the leader's manager after a checkout, return or override
//     (Kick: a touched key the leader watches; coalesced, at most one
//     write per kickGap);
//   - serves its own waiting checkouts and ondemand long-polls when its
//     store sees a VM become ready or running (the store follows the pool
//     indexes: its counts are those of every replica's writes, a watch
//     delivery behind), and publishes its waiters' demand, which the
//     leader's manager clones for as for its own;
//   - shows who leads in /status ("replica") and /metrics (vmpooler_leading).

// kickGap bounds how often a replica that does not lead writes a kick.
const kickGap = 50 * time.Millisecond

// demandEvery is how often a replica looks whether its waiters' demand
// changed, to publish it for the leader.
const demandEvery = 200 * time.Millisecond

// healthEvery is how often the leader looks whether its manager's view of
// the pools' health changed, to publish it, and how long a replica that
// does not lead reuses what it read of it.
const healthEvery = time.Second

// replicas is the daemon's part in a group of replicas on etcd.
type replicas struct {
	eng    *etcd.Engine
	name   string
	ttl    time.Duration
	logger *slog.Logger

	mgr    atomic.Pointer[pool.Manager] // the manager while this replica leads
	leader atomic.Value                 // string: the leader's name
	kicks  chan struct{}                // coalesced kicks to write
	wg     sync.WaitGroup

	healthMu sync.Mutex // guards the two below: the leader's pool health, read at most every healthEvery
	health   map[string]pool.PoolHealth
	healthAt time.Time
}

// replicaName is [etcd] replica, or the host name and the API's address.
func replicaName(cfg *Config, addr string) string {
	if cfg.Etcd != nil && cfg.Etcd.Replica != "" {
		return cfg.Etcd.Replica
	}
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	return host + "/" + addr
}

// newReplicas is this replica's part in the group, not yet started: the
// API may read it (status, kicks) while start has not run yet.
func newReplicas(cfg *Config, eng *etcd.Engine, addr string, logger *slog.Logger) *replicas {
	r := &replicas{eng: eng, name: replicaName(cfg, addr), logger: logger, kicks: make(chan struct{}, 1)}
	if cfg.Etcd != nil && cfg.Etcd.LeaseTTL > 0 {
		r.ttl = time.Duration(cfg.Etcd.LeaseTTL) * time.Second
	}
	r.leader.Store("")
	return r
}

// start joins the group until ctx ends: it keeps the leader's name,
// publishes this replica's waiters' demand, writes kicks, and campaigns;
// while it leads it runs a manager made by newManager.
func (r *replicas) start(ctx context.Context, d *daemon, prov pool.Provider, newManager func(pool.Store, pool.Provider) *pool.Manager) {
	r.wg.Go(func() { r.eng.PublishDemand(ctx, r.name, d.svc.WaitDemand, demandEvery) })
	r.wg.Go(func() { r.eng.WatchLeader(ctx, func(name string) { r.leader.Store(name) }) })
	r.wg.Go(func() { r.writeKicks(ctx) })
	r.wg.Go(func() { r.campaign(ctx, d.st, prov, newManager) })
}

// wait blocks until the replica has left the group (ctx ended): its term,
// if any, resigned.
func (r *replicas) wait() { r.wg.Wait() }

// status is this replica and the leader, for /status and /metrics.
func (r *replicas) status() pool.ReplicaStatus {
	return pool.ReplicaStatus{Name: r.name, Leader: r.leader.Load().(string), Leading: r.mgr.Load() != nil}
}

// kick wakes the manager: this replica's own while it leads, else the
// leader's through etcd.
func (r *replicas) kick() {
	if m := r.mgr.Load(); m != nil {
		m.Kick()
		return
	}
	select {
	case r.kicks <- struct{}{}:
	default: // one is due already
	}
}

func (r *replicas) writeKicks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kicks:
		}
		if err := r.eng.Kick(r.name); err != nil {
			r.logger.Debug("kick the leader", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(kickGap):
		}
	}
}

// campaign leads whenever it can, until ctx ends.
func (r *replicas) campaign(ctx context.Context, st *store.Store, prov pool.Provider,
	newManager func(pool.Store, pool.Provider) *pool.Manager) {
	for ctx.Err() == nil {
		term, err := r.eng.Campaign(ctx, r.name, r.ttl)
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Warn("leader election: cannot campaign; trying again", "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		r.logger.Info("leading: this replica runs the pool manager", "replica", r.name)
		why := r.lead(ctx, term, st, prov, newManager)
		term.Resign()
		r.logger.Warn("no longer leading: the pool manager stopped on this replica", "replica", r.name, "why", why)
	}
}

// lead runs a manager for the term until it or ctx ends, and says why it
// stopped.
func (r *replicas) lead(ctx context.Context, term *etcd.Term, st *store.Store, prov pool.Provider,
	newManager func(pool.Store, pool.Provider) *pool.Manager) string {
	fst := store.New(st.Path)
	fst.Engine, fst.Retention, fst.Batch, fst.CheckoutWindow = term.Engine(), st.Retention, st.Batch, st.CheckoutWindow
	if err := fst.Open(); err != nil {
		return "open the fenced store: " + err.Error()
	}
	defer fst.Close()
	m := newManager(fst, fencedProvider{Provider: prov, fresh: term.Fresh})
	local := m.Demand
	m.Demand = func() map[string]int { // this replica's waiters and the others'
		out := map[string]int{}
		if local != nil {
			out = local()
		}
		if others, err := r.eng.Demand(term.Context(), r.name); err == nil {
			for p, n := range others {
				out[p] += n
			}
		}
		return out
	}
	if err := m.Open(); err != nil {
		return "start the manager: " + err.Error()
	}
	r.mgr.Store(m)
	kctx, stopKicks := context.WithCancel(term.Context())
	go r.eng.WatchKicks(kctx, m.Kick)
	go r.publishHealth(kctx, term, m)
	why := "shutting down"
	select {
	case <-ctx.Done():
	case <-term.Done():
		why = "the leadership lease went stale or was lost"
	}
	stopKicks()
	r.mgr.Store(nil)
	m.Close() // cancels clones and jobs in flight: their VMs stay pending for the next leader
	return why
}

// publishHealth publishes what m knows of the pools' health for the other
// replicas (see Health), whenever it changed, until ctx ends.
func (r *replicas) publishHealth(ctx context.Context, term *etcd.Term, m *pool.Manager) {
	var last []byte
	tick := time.NewTicker(healthEvery)
	defer tick.Stop()
	for {
		v, err := json.Marshal(m.Health())
		if err == nil && !bytes.Equal(v, last) {
			if err := term.PublishHealth(v); err == nil {
				last = v
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Health is the pools' health as the manager sees it: this replica's own
// while it leads, else what the leader published (read at most every
// healthEvery; nil while it cannot be read).
func (r *replicas) Health() map[string]pool.PoolHealth {
	if m := r.mgr.Load(); m != nil {
		return m.Health()
	}
	r.healthMu.Lock()
	defer r.healthMu.Unlock()
	if time.Since(r.healthAt) < healthEvery {
		return r.health
	}
	r.healthAt = time.Now()
	r.health = nil
	if v, err := r.eng.LeaderHealth(context.Background()); err == nil && v != nil {
		var h map[string]pool.PoolHealth
		if json.Unmarshal(v, &h) == nil {
			r.health = h
		}
	}
	return r.health
}

// ownConfig returns a copy of c for a manager: NewManager and SetConfig
// fill its defaults in place, and on etcd a manager starts (a new term)
// while the API reads the configuration in force.
func ownConfig(c *pool.Config) *pool.Config {
	cp := *c
	cp.Pools = slices.Clone(c.Pools)
	return &cp
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// errStale is what a leader's provider answers once its term is not fresh.
var errStale = errs.Errorf(errs.EUNAVAILABLE, "this replica's leadership lease is stale: no vSphere call until it leads again")

// fencedProvider refuses every vSphere call once the term is not fresh,
// so that a leader that lost touch with etcd (or was stopped) stops acting
// on vCenter before another can be elected. The check reads only this
// process's monotonic clock.
type fencedProvider struct {
	pool.Provider
	fresh func() bool
}

func (f fencedProvider) ok() error {
	if !f.fresh() {
		return errStale
	}
	return nil
}

func (f fencedProvider) Clone(ctx context.Context, spec pool.CloneSpec) error {
	if err := f.ok(); err != nil {
		return err
	}
	return f.Provider.Clone(ctx, spec)
}

func (f fencedProvider) List(ctx context.Context, datacenter, folder string) ([]pool.VMInfo, error) {
	if err := f.ok(); err != nil {
		return nil, err
	}
	return f.Provider.List(ctx, datacenter, folder)
}

func (f fencedProvider) Ready(ctx context.Context, vm pool.VMInfo, check string) (bool, string, error) {
	if err := f.ok(); err != nil {
		return false, "", err
	}
	return f.Provider.Ready(ctx, vm, check)
}

func (f fencedProvider) Destroy(ctx context.Context, loc pool.Location) error {
	if err := f.ok(); err != nil {
		return err
	}
	return f.Provider.Destroy(ctx, loc)
}

func (f fencedProvider) Snapshot(ctx context.Context, loc pool.Location, name string, memory bool) error {
	if err := f.ok(); err != nil {
		return err
	}
	return f.Provider.Snapshot(ctx, loc, name, memory)
}

func (f fencedProvider) Revert(ctx context.Context, loc pool.Location, name string) error {
	if err := f.ok(); err != nil {
		return err
	}
	return f.Provider.Revert(ctx, loc, name)
}

func (f fencedProvider) AddDisk(ctx context.Context, loc pool.Location, sizeGB int, id string) error {
	if err := f.ok(); err != nil {
		return err
	}
	return f.Provider.AddDisk(ctx, loc, sizeGB, id)
}

func (f fencedProvider) Annotate(ctx context.Context, loc pool.Location, values map[string]string) error {
	if err := f.ok(); err != nil {
		return err
	}
	return f.Provider.Annotate(ctx, loc, values)
}

// Notes passes the provider's notes through (pool.NoteProvider): they are
// memory, not vSphere calls.
func (f fencedProvider) Notes() map[string][]string {
	if np, ok := f.Provider.(pool.NoteProvider); ok {
		return np.Notes()
	}
	return nil
}
