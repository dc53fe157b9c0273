package etcd

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// Leadership: several replicas share one state, and exactly one of them at
// a time runs the pool manager. They campaign in an etcd election
// (concurrency.Election) under Prefix + "leader/", each with a session
// lease of LeaseTTL. The winner holds a Term:
//
//   - Term.Engine is the engine with a fence: every commit also requires
//     that the term's election key still exists with the revision it was
//     created at. When the lease expires (a partition, a stalled process)
//     etcd deletes the key, and no write of the old leader commits again,
//     whatever it still believes.
//   - Term.Fresh is false once the lease has not been renewed for 2/3 of
//     its TTL, measured on this process's monotonic clock: the leader
//     stops issuing vSphere calls before etcd can let another leader start
//     (a process stopped with SIGSTOP finds, on SIGCONT, that it is stale).
//     Term.Done is closed then, or when the session ends or the term is
//     resigned.
//
// Resign hands over at once (graceful shutdown): the key is deleted and the
// lease revoked, so the next campaigner wins without waiting for the TTL.

// DefaultLeaseTTL is the leader's lease unless set: a new leader can start
// this long after the old one stopped renewing.
const DefaultLeaseTTL = 5 * time.Second

// errNotLeader is the error of a fenced write after the term ended.
var errNotLeader = errs.Errorf(errs.EUNAVAILABLE, "this replica does not lead any more: its leadership lease has expired or been resigned")

// Fence is what a leader's writes require: its election key, created at Rev.
type Fence struct {
	Key string
	Rev int64
}

func (f *Fence) cmp() clientv3.Cmp {
	return clientv3.Compare(clientv3.CreateRevision(f.Key), "=", f.Rev)
}

// check returns errNotLeader unless the fence still holds.
func (f *Fence) check(e *Engine) error {
	ctx, cancel := e.request()
	defer cancel()
	resp, err := e.client.Get(ctx, f.Key)
	if err != nil {
		return e.wrap(err)
	}
	if len(resp.Kvs) == 0 || resp.Kvs[0].CreateRevision != f.Rev {
		return errNotLeader
	}
	return nil
}

// electionPrefix is where the replicas campaign.
func (e *Engine) electionPrefix() string { return e.cfg.Prefix + "leader/" }

// Campaign blocks until this replica (name) leads, or ctx ends, or the
// campaign fails (etcd unreachable: try again). ttl is the session lease
// (DefaultLeaseTTL when 0; whole seconds).
func (e *Engine) Campaign(ctx context.Context, name string, ttl time.Duration) (*Term, error) {
	if ttl <= 0 {
		ttl = DefaultLeaseTTL
	}
	secs := max(int(ttl.Round(time.Second)/time.Second), 1)
	ttl = time.Duration(secs) * time.Second
	// The lease is granted here, within the request timeout (a session
	// would grant it without a deadline, and hang without a quorum).
	rctx, rcancel := e.request()
	grant, err := e.client.Grant(rctx, int64(secs))
	rcancel()
	if err != nil {
		return nil, e.wrap(err)
	}
	session, err := concurrency.NewSession(e.client, concurrency.WithLease(grant.ID), concurrency.WithContext(e.ctx))
	if err != nil {
		return nil, e.wrap(err)
	}
	t := &Term{e: e, session: session, ttl: ttl, name: name, born: time.Now()} // renewed 0: just granted
	kctx, kcancel := context.WithCancel(e.ctx)
	t.stopKeep = kcancel
	ka, err := e.client.KeepAlive(kctx, session.Lease())
	if err != nil {
		kcancel()
		session.Close()
		return nil, e.wrap(err)
	}
	go func() {
		for range ka {
			t.renewed.Store(int64(time.Since(t.born)))
		}
	}()
	t.election = concurrency.NewElection(session, e.electionPrefix())
	if err := t.election.Campaign(ctx, name); err != nil {
		kcancel()
		t.closeSession()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, e.wrap(err)
	}
	t.fence = &Fence{Key: t.election.Key(), Rev: t.election.Rev()}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	go t.watch()
	return t, nil
}

// Term is one replica's leadership, from Campaign until Done.
type Term struct {
	e        *Engine
	session  *concurrency.Session
	election *concurrency.Election
	fence    *Fence
	ttl      time.Duration
	name     string
	born     time.Time    // monotonic origin of renewed
	renewed  atomic.Int64 // when the lease was last renewed, since born
	stopKeep context.CancelFunc

	ctx    context.Context // ended with the term
	cancel context.CancelFunc
	once   sync.Once
}

// Fresh reports whether the lease was renewed within 2/3 of its TTL: the
// leader may still act. It reads only this process's monotonic clock.
func (t *Term) Fresh() bool {
	if t.ctx.Err() != nil {
		return false
	}
	age := time.Since(t.born) - time.Duration(t.renewed.Load())
	return age < t.ttl*2/3
}

// Done is closed when the term has ended: the lease went stale or was
// lost, or Resign was called.
func (t *Term) Done() <-chan struct{} { return t.ctx.Done() }

// Context is a context that ends with the term.
func (t *Term) Context() context.Context { return t.ctx }

// Fence is what the term's writes require.
func (t *Term) Fence() Fence { return *t.fence }

// watch ends the term as soon as the lease is stale or the session is gone.
func (t *Term) watch() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.session.Done():
			t.end()
			return
		case <-tick.C:
			if !t.Fresh() {
				t.end()
				return
			}
		}
	}
}

func (t *Term) end() { t.once.Do(t.cancel) }

// Resign ends the term and hands leadership over at once: the election
// key is deleted and the lease revoked (each bounded by the request
// timeout; if etcd is unreachable the lease runs out on its own).
func (t *Term) Resign() {
	t.end()
	ctx, cancel := context.WithTimeout(context.Background(), t.e.cfg.RequestTimeout)
	defer cancel()
	t.election.Resign(ctx)
	t.stopKeep()
	t.closeSession()
}

func (t *Term) closeSession() {
	ctx, cancel := context.WithTimeout(context.Background(), t.e.cfg.RequestTimeout)
	defer cancel()
	t.e.client.Revoke(ctx, t.session.Lease())
	t.session.Orphan()
}

// Engine returns the term's engine: e with every write fenced by the term.
// Its Close does nothing (the replica's engine owns the connection).
func (t *Term) Engine() *FencedEngine { return &FencedEngine{e: t.e, fence: t.fence} }

// FencedEngine is an engine whose every commit also requires a fence: a
// leader's writes after its term ended fail (EUNAVAILABLE) instead of
// landing.
type FencedEngine struct {
	e     *Engine
	fence *Fence
}

var (
	_ kv.Engine = (*FencedEngine)(nil)
	_ kv.Shared = (*FencedEngine)(nil)
)

func (f *FencedEngine) Update(fn func(kv.Tx) error) error { return f.e.update(fn, f.fence) }
func (f *FencedEngine) View(fn func(kv.Tx) error) error   { return f.e.View(fn) }
func (f *FencedEngine) Close() error                      { return nil }
func (f *FencedEngine) Follow(ctx context.Context, bucket []byte, fn func(kv.Event)) error {
	return f.e.Follow(ctx, bucket, fn)
}
func (f *FencedEngine) Sync(ctx context.Context) error { return f.e.Sync(ctx) }

// Leader returns the name of the replica that leads ("" if none), from
// the oldest key of the election.
func (e *Engine) Leader(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	defer cancel()
	resp, err := e.client.Get(ctx, e.electionPrefix(), clientv3.WithFirstCreate()...)
	if err != nil {
		return "", e.wrap(err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// kickKey is the key a replica touches to wake the leader's manager.
func (e *Engine) kickKey() string { return e.cfg.Prefix + "kick" }

// Kick wakes the leader's manager (WatchKicks): one small write.
func (e *Engine) Kick(from string) error {
	ctx, cancel := e.request()
	defer cancel()
	_, err := e.client.Put(ctx, e.kickKey(), from)
	return e.wrap(err)
}

// WatchKicks calls fn for every Kick, from one goroutine, until ctx ends;
// after a lost watch it starts again (and calls fn once: a kick may have
// been missed).
func (e *Engine) WatchKicks(ctx context.Context, fn func()) {
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for resp := range e.client.Watch(wctx, e.kickKey()) {
			if resp.Err() != nil {
				break
			}
			if len(resp.Events) > 0 {
				fn()
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		fn()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// IsNotLeader reports whether err says that a fenced write came after its
// term ended.
func IsNotLeader(err error) bool { return errors.Is(err, errNotLeader) }

// WatchLeader calls fn with the leader's name ("" for none) at once and
// whenever the election changes, until ctx ends; after a lost watch it
// reads again within a second.
func (e *Engine) WatchLeader(ctx context.Context, fn func(name string)) {
	for ctx.Err() == nil {
		name, err := e.Leader(ctx)
		if err == nil {
			fn(name)
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wch := e.client.Watch(wctx, e.electionPrefix(), clientv3.WithPrefix())
		for resp := range wch {
			if resp.Err() != nil {
				break
			}
			if name, err := e.Leader(ctx); err == nil {
				fn(name)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// The leader's manager knows things about the pools that only it can see
// (the foreign VMs of their folders, ready checks and clones that keep
// failing, the provider's notes): it publishes them under Prefix +
// "health", under its term's lease, so that every replica's /status and
// /metrics show them and they go with the term.

func (e *Engine) healthKey() string { return e.cfg.Prefix + "health" }

// PublishHealth writes v as what the leader's manager knows of the pools.
func (t *Term) PublishHealth(v []byte) error {
	ctx, cancel := t.e.request()
	defer cancel()
	_, err := t.e.client.Put(ctx, t.e.healthKey(), string(v), clientv3.WithLease(t.session.Lease()))
	return t.e.wrap(err)
}

// LeaderHealth returns what the leader last published with PublishHealth
// (nil while no term has).
func (e *Engine) LeaderHealth(ctx context.Context) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	defer cancel()
	resp, err := e.client.Get(rctx, e.healthKey())
	if err != nil {
		return nil, e.wrap(err)
	} else if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

// Waiting checkouts on replicas that do not lead: each replica publishes
// what its waiters ask for (pool → VMs) under Prefix + "demand/<name>",
// with a lease of its own, so that it goes when the replica does; the
// leader's manager adds the others' demand to its own waiters' when it
// decides how many VMs to clone beyond the pool size.

// demandTTL is the lease of a replica's published demand.
const demandTTL = 10 // seconds

func (e *Engine) demandPrefix() string { return e.cfg.Prefix + "demand/" }

// PublishDemand keeps this replica's demand (as demand returns it, read
// every interval) in etcd until ctx ends; it writes only when it changed.
func (e *Engine) PublishDemand(ctx context.Context, name string, demand func() map[string]int, interval time.Duration) {
	var lease atomic.Int64 // 0: none (yet, or lost: a new one on the next write)
	var last string
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		d := demand()
		for p, n := range d {
			if n <= 0 {
				delete(d, p)
			}
		}
		v, _ := json.Marshal(d)
		if string(v) == last && lease.Load() != 0 {
			continue
		}
		if lease.Load() == 0 {
			rctx, cancel := e.request()
			g, err := e.client.Grant(rctx, demandTTL)
			cancel()
			if err != nil {
				continue
			}
			ka, err := e.client.KeepAlive(ctx, g.ID)
			if err != nil {
				continue
			}
			lease.Store(int64(g.ID))
			go func() {
				for range ka { // drained until the lease is lost or ctx ends
				}
				lease.CompareAndSwap(int64(g.ID), 0)
			}()
		}
		id := clientv3.LeaseID(lease.Load())
		if id == 0 {
			continue // lost meanwhile: never write demand that would outlive the replica
		}
		rctx, cancel := e.request()
		_, err := e.client.Put(rctx, e.demandPrefix()+name, string(v), clientv3.WithLease(id))
		cancel()
		if err == nil {
			last = string(v)
		}
	}
}

// Demand returns what the waiters of the replicas other than name ask for,
// pool → VMs, summed.
func (e *Engine) Demand(ctx context.Context, name string) (map[string]int, error) {
	rctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
	defer cancel()
	resp, err := e.client.Get(rctx, e.demandPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, e.wrap(err)
	}
	out := map[string]int{}
	for _, kv := range resp.Kvs {
		if string(kv.Key) == e.demandPrefix()+name {
			continue
		}
		var d map[string]int
		if json.Unmarshal(kv.Value, &d) != nil {
			continue
		}
		for p, n := range d {
			out[p] += n
		}
	}
	return out, nil
}
