package pool

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// Waiting checkouts. A checkout may wait, up to a deadline, for the VMs it
// asks for instead of taking upstream's immediate 503. The rule is first
// come, first served per pool:
//
//   - waiters are kept in arrival order; a waiter is served when every VM
//     it asks for can be handed out at once (all or nothing, one store
//     transaction that also moves them to running);
//   - a waiter that cannot be served yet holds back every later waiter
//     (and every checkout, waiting or not) on any pool it asks for, so the
//     VMs made ready for it are never taken by someone who came later;
//   - a waiter holds its pools at most until its own deadline
//     (max_checkout_wait), so a large request cannot hold small ones back
//     for ever, and small ones cannot starve it: each gets its turn.
//
// Nothing is reserved in the store: a crash while requests wait leaves
// every VM ready or running as it was. The queue is woken once per VM made
// ready (Manager.Ready), per waiter that leaves, and per new waiter; it
// keeps no timer per waiter.

// waiter is one waiting checkout.
type waiter struct {
	wants  []Want
	pools  []string // every candidate pool of its wants
	demand map[string]int
	caller Caller
	since  time.Time
	done   chan waitResult // 1-buffered; written once, by serve
}

type waitResult struct {
	vms map[string][]store.VM
	err error
}

// waitQueue holds the waiters of a Service.
type waitQueue struct {
	mu      sync.Mutex
	waiters []*waiter // arrival order
}

// each calls fn on every waiter, in arrival order, with q locked.
func (q *waitQueue) each(fn func(w *waiter)) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, w := range q.waiters {
		fn(w)
	}
}

// queue returns the Service's wait queue.
func (s *Service) queue() *waitQueue {
	return s.waits
}

// CheckoutWait is Checkout that, when the pools are short, waits up to
// wait for the VMs, in turn (see above). It returns what Checkout returns:
// the VMs, or EEMPTY at the deadline (upstream's 503). When ctx ends (the
// client went away) it returns ctx's error, and VMs handed out to it at
// that very moment go back to ready, first in line. wait ≤ 0 is Checkout.
func (s *Service) CheckoutWait(ctx context.Context, wants []Want, c Caller, wait time.Duration) (map[string][]store.VM, error) {
	if wait <= 0 {
		return s.Checkout(wants, c)
	}
	cur := s.state()
	if err := cur.validCheckout(wants, c); err != nil {
		return nil, err
	}
	q := s.queue()
	w := &waiter{wants: wants, caller: c, since: s.Now(), done: make(chan waitResult, 1),
		demand: make(map[string]int)}
	for _, want := range wants {
		cands := cur.aliases[want.Name]
		w.pools = append(w.pools, cands...)
		w.demand[cands[0]] += want.Count
	}
	q.mu.Lock()
	if !q.holds(w.pools, len(q.waiters)) {
		vms, err := s.checkoutNow(cur, wants, c)
		if err == nil || errs.ErrorCode(err) != errs.EEMPTY {
			q.mu.Unlock()
			return vms, err
		}
	}
	if err := s.mayWait(cur, wants, c); err != nil {
		q.mu.Unlock()
		return nil, err
	}
	q.waiters = append(q.waiters, w)
	q.mu.Unlock()
	s.Kick() // the manager clones for the demand

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case r := <-w.done:
		return r.vms, r.err
	case <-timer.C:
	case <-ctx.Done():
	}
	return s.leave(ctx, w, wait)
}

// mayWait refuses a checkout that would have to wait when the manager
// should not clone for it: more VMs of a pool than an ondemand request may
// ask for (max_ondemand_instances_per_request, as a waiting checkout makes
// the manager clone as one does), or more than the caller's quota allows
// (a checkout that is not held back by others is checked by the store,
// before its pools are: 403 at once).
func (s *Service) mayWait(cur *serviceState, wants []Want, c Caller) error {
	if limit := cur.cfg.MaxOndemandPerRequest; limit > 0 {
		for _, w := range wants {
			if w.Count > limit {
				return errs.Errorf(errs.EFORBIDDEN,
					"no %d VMs of %s are ready, and a checkout that waits may ask for at most %d of a pool (max_ondemand_instances_per_request): ask for fewer, or without waiting",
					w.Count, w.Name, limit)
			}
		}
	}
	if q := cur.quota(c.User); q != nil {
		want, _ := cur.spread(wants)
		return s.Store.CheckQuota(c.User, q, want)
	}
	return nil
}

// leave ends a wait cut short by its deadline or its client: a waiter
// still queued leaves the queue; one served at that very moment keeps its
// VMs if its client is still there, and gives them back if not.
func (s *Service) leave(ctx context.Context, w *waiter, wait time.Duration) (map[string][]store.VM, error) {
	q := s.queue()
	q.mu.Lock()
	queued := q.remove(w)
	q.mu.Unlock()
	if queued {
		s.ServeWaiters() // those it held back may be served now
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, errs.Errorf(errs.EEMPTY, "no VM ready within %s", wait.Round(time.Second))
	}
	r := <-w.done // served as the deadline came: it has its VMs
	if ctx.Err() != nil && r.err == nil {
		s.unassign(r.vms)
		return nil, ctx.Err()
	}
	return r.vms, r.err
}

// ServeWaiters hands VMs to the waiters that can be served now, in
// arrival order. The manager calls it when it made a VM ready; a waiter
// that leaves calls it too.
func (s *Service) ServeWaiters() {
	q := s.queue()
	cur := s.state()
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := 0; i < len(q.waiters); {
		w := q.waiters[i]
		if q.holds(w.pools, i) {
			i++
			continue
		}
		vms, err := s.checkoutNow(cur, w.wants, w.caller)
		if errs.ErrorCode(err) == errs.EEMPTY {
			i++ // it holds its pools for those behind it
			continue
		}
		q.waiters = slices.Delete(q.waiters, i, i+1)
		w.done <- waitResult{vms, err}
	}
}

// holds reports whether one of the first n waiters asks for one of pools.
// q.mu is held.
func (q *waitQueue) holds(pools []string, n int) bool {
	for _, w := range q.waiters[:n] {
		for _, p := range w.pools {
			if slices.Contains(pools, p) {
				return true
			}
		}
	}
	return false
}

// remove takes w out of the queue; false if serve took it already. q.mu is held.
func (q *waitQueue) remove(w *waiter) bool {
	i := slices.Index(q.waiters, w)
	if i < 0 {
		return false
	}
	q.waiters = slices.Delete(q.waiters, i, i+1)
	return true
}

// unassign puts VMs no client received back to ready.
func (s *Service) unassign(vms map[string][]store.VM) {
	var hosts []string
	for _, list := range vms {
		for _, vm := range list {
			hosts = append(hosts, vm.Hostname)
		}
	}
	if err := s.Store.Unassign(hosts); err != nil {
		s.Logger.Error("putting back VMs of a checkout whose client went away", "hosts", hosts, "err", err)
		return
	}
	s.Logger.Info("client went away as its waiting checkout was served; VMs back to ready", "hosts", hosts)
	s.ServeWaiters()
}

// WaitDemand returns, per pool, the VMs waiting checkouts ask for (an
// alias counts for its first pool): the manager clones for them beyond
// the pool's size.
func (s *Service) WaitDemand() map[string]int {
	out := make(map[string]int)
	s.queue().each(func(w *waiter) {
		for p, n := range w.demand {
			out[p] += n
		}
	})
	return out
}

// Waiting describes a pool's waiting checkouts for /status.
type Waiting struct {
	Count  int       // waiting checkouts that ask for the pool
	Oldest time.Time // arrival of the oldest
}

// Waiters returns, per pool, its waiting checkouts.
func (s *Service) Waiters() map[string]Waiting {
	out := make(map[string]Waiting)
	s.queue().each(func(w *waiter) {
		for _, p := range slices.Compact(slices.Sorted(slices.Values(w.pools))) {
			wt := out[p]
			if wt.Count == 0 || w.since.Before(wt.Oldest) {
				wt.Oldest = w.since
			}
			wt.Count++
			out[p] = wt
		}
	})
	return out
}

// waitersHold reports whether waiting checkouts hold one of the pools of
// wants: a checkout that does not wait must not take their VMs.
func (s *Service) waitersHold(cur *serviceState, wants []Want) bool {
	q := s.queue()
	var pools []string
	for _, w := range wants {
		pools = append(pools, cur.aliases[w.Name]...)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.holds(pools, len(q.waiters))
}

// passes is a broadcast of the manager's passes: closed and replaced at
// the end of each one, so that long-polls of ondemand requests wake once
// per pass, whatever their number.
type passes struct {
	mu sync.Mutex
	ch chan struct{}
}

func (p *passes) next() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == nil {
		p.ch = make(chan struct{})
	}
	return p.ch
}

// PassDone tells long-polls that the manager finished a pass (it fills
// ondemand requests in passes). The manager calls it (Manager.AfterPass).
func (s *Service) PassDone() {
	s.pass.mu.Lock()
	defer s.pass.mu.Unlock()
	if s.pass.ch != nil {
		close(s.pass.ch)
		s.pass.ch = nil
	}
}

// OndemandWait is Ondemand that, while the request is pending, waits up
// to wait for it to be filled (or to fail), looking again after each of
// the manager's passes.
func (s *Service) OndemandWait(ctx context.Context, id string, wait time.Duration) (OndemandView, error) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		next := s.pass.next() // before reading: a pass that ends meanwhile is seen
		v, err := s.Ondemand(id)
		if err != nil || v.State != store.RequestPending || wait <= 0 {
			return v, err
		}
		select {
		case <-next:
		case <-timer.C:
			return s.Ondemand(id)
		case <-ctx.Done():
			return v, ctx.Err()
		}
	}
}
