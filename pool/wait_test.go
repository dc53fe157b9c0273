package pool

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/store"
)

// waitEnv is a Service for waiting checkouts, safe for the waiters'
// goroutines (its clock and Kick are).
type waitEnv struct {
	t     *testing.T
	svc   *Service
	st    *store.Store
	seq   atomic.Int64
	kicks atomic.Int64
}

func mustWaitEnv(t *testing.T, pools ...PoolConfig) *waitEnv {
	t.Helper()
	e := &waitEnv{t: t}
	e.st = storetest.MustOpen(t)
	cfg := &Config{Pools: pools}
	cfg.Defaults()
	e.svc = NewService(cfg, e.st, nil)
	e.svc.Kick = func() { e.kicks.Add(1) }
	return e
}

// ready makes one VM of pool ready and wakes the waiters, as the manager does.
func (e *waitEnv) ready(pool string) string {
	e.t.Helper()
	host := fmt.Sprintf("%s-%03d", pool, e.seq.Add(1))
	if err := e.st.AddPending(store.VM{Hostname: host, Pool: pool}); err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.MarkReady(host, "10.0.0.1"); err != nil {
		e.t.Fatal(err)
	}
	e.svc.ServeWaiters()
	return host
}

type waitOutcome struct {
	vms map[string][]store.VM
	err error
}

// wait starts a waiting checkout and returns once it is queued.
func (e *waitEnv) wait(ctx context.Context, wants []Want, d time.Duration) <-chan waitOutcome {
	e.t.Helper()
	before := e.queued()
	out := make(chan waitOutcome, 1)
	go func() {
		vms, err := e.svc.CheckoutWait(ctx, wants, Caller{}, d)
		out <- waitOutcome{vms, err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for e.queued() == before {
		if time.Now().After(deadline) {
			e.t.Fatal("the waiter was never queued")
		}
		time.Sleep(time.Millisecond)
	}
	return out
}

func (e *waitEnv) queued() int {
	q := e.svc.queue()
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiters)
}

func got(t *testing.T, ch <-chan waitOutcome) waitOutcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not answered")
	}
	return waitOutcome{}
}

func pending(ch <-chan waitOutcome) bool {
	select {
	case o := <-ch:
		_ = o
		return false
	default:
		return true
	}
}

// Waiters on an empty pool are served first come, first served, one VM
// each as VMs become ready; a checkout that does not wait cannot jump the
// queue.
func TestWaitFIFO(t *testing.T) {
	e := mustWaitEnv(t, PoolConfig{Name: "p"})
	ctx := context.Background()
	var chans []<-chan waitOutcome
	for range 5 {
		chans = append(chans, e.wait(ctx, []Want{{Name: "p", Count: 1}}, time.Minute))
	}
	if d := e.svc.WaitDemand()["p"]; d != 5 {
		t.Errorf("demand = %d, want 5", d)
	}
	if w := e.svc.Waiters()["p"]; w.Count != 5 || w.Oldest.IsZero() {
		t.Errorf("waiters = %+v", w)
	}
	for i := range chans {
		host := e.ready("p")
		if _, err := e.svc.Checkout([]Want{{Name: "p", Count: 1}}, Caller{}); errs.ErrorCode(err) != errs.EEMPTY && i < len(chans)-1 {
			t.Errorf("a checkout that does not wait: %v, want EEMPTY while others wait", err)
		}
		o := got(t, chans[i])
		if o.err != nil || o.vms["p"][0].Hostname != host {
			t.Fatalf("waiter %d: %v %v, want %s", i, o.vms, o.err, host)
		}
		for _, later := range chans[i+1:] {
			if !pending(later) {
				t.Fatalf("waiter after %d answered out of turn", i)
			}
		}
	}
	if n := e.queued(); n != 0 {
		t.Errorf("%d waiters left", n)
	}
}

// A request for two pools is served all at once when both have VMs; the
// VMs made ready for it meanwhile are not taken by those who came later.
func TestWaitMultiPool(t *testing.T) {
	e := mustWaitEnv(t, PoolConfig{Name: "p1"}, PoolConfig{Name: "p2"})
	ctx := context.Background()
	both := e.wait(ctx, []Want{{Name: "p1", Count: 1}, {Name: "p2", Count: 1}}, time.Minute)
	later := e.wait(ctx, []Want{{Name: "p1", Count: 1}}, time.Minute)
	h1 := e.ready("p1")
	if !pending(both) || !pending(later) {
		t.Fatal("served before every VM it asks for was ready, or out of turn")
	}
	if c := e.st.Counts()["p1"]; c.Ready != 1 {
		t.Fatalf("p1 counts = %+v: its ready VM was taken", c)
	}
	if _, err := e.svc.Checkout([]Want{{Name: "p1", Count: 1}}, Caller{}); errs.ErrorCode(err) != errs.EEMPTY {
		t.Errorf("checkout of a held VM: %v, want EEMPTY", err)
	}
	h2 := e.ready("p2")
	o := got(t, both)
	if o.err != nil || o.vms["p1"][0].Hostname != h1 || o.vms["p2"][0].Hostname != h2 {
		t.Fatalf("multi-pool waiter: %v %v", o.vms, o.err)
	}
	h3 := e.ready("p1")
	if o := got(t, later); o.err != nil || o.vms["p1"][0].Hostname != h3 {
		t.Fatalf("later waiter: %v %v", o.vms, o.err)
	}
}

// At its deadline a waiter gets EEMPTY (upstream's 503) and leaves the
// queue, and those it held back are served; a waiter whose client went
// away leaves at once.
func TestWaitDeadlineAndDisconnect(t *testing.T) {
	e := mustWaitEnv(t, PoolConfig{Name: "p1"}, PoolConfig{Name: "p2"})
	short := e.wait(context.Background(), []Want{{Name: "p1", Count: 1}, {Name: "p2", Count: 1}}, 300*time.Millisecond)
	behind := e.wait(context.Background(), []Want{{Name: "p1", Count: 1}}, time.Minute)
	h := e.ready("p1")
	if o := got(t, short); errs.ErrorCode(o.err) != errs.EEMPTY || o.vms != nil {
		t.Fatalf("at the deadline: %v %v, want EEMPTY", o.vms, o.err)
	}
	if o := got(t, behind); o.err != nil || o.vms["p1"][0].Hostname != h {
		t.Fatalf("the waiter held back: %v %v, want %s once the first left", o.vms, o.err, h)
	}

	ctx, cancel := context.WithCancel(context.Background())
	gone := e.wait(ctx, []Want{{Name: "p2", Count: 1}}, time.Minute)
	cancel()
	if o := got(t, gone); o.err != context.Canceled {
		t.Fatalf("disconnected waiter: %v, want context.Canceled", o.err)
	}
	if n := e.queued(); n != 0 {
		t.Fatalf("%d waiters left after a disconnect", n)
	}
	h2 := e.ready("p2")
	if vm, _ := e.st.Get(h2); vm.State != store.StateReady {
		t.Errorf("VM made ready after the disconnect is %s, want ready", vm.State)
	}
}

// A waiter's client that goes away just as it is served gives its VMs
// back: ready again, first in line. (The race itself is decided by a
// select; leave is what runs after it, driven here in both orders.)
func TestWaitServedAfterDisconnectGivesBack(t *testing.T) {
	e := mustWaitEnv(t, PoolConfig{Name: "p"})
	enqueue := func() *waiter {
		w := &waiter{wants: []Want{{Name: "p", Count: 1}}, pools: []string{"p"},
			demand: map[string]int{"p": 1}, done: make(chan waitResult, 1)}
		q := e.svc.queue()
		q.mu.Lock()
		q.waiters = append(q.waiters, w)
		q.mu.Unlock()
		return w
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()

	// Served first, then the client is found gone: the VM goes back.
	w := enqueue()
	host := e.ready("p") // serves w
	if e.queued() != 0 {
		t.Fatal("the waiter was not served")
	}
	if vms, err := e.svc.leave(gone, w, time.Minute); err != context.Canceled || vms != nil {
		t.Fatalf("leave after serve, client gone: %v %v, want context.Canceled", vms, err)
	}
	vm, err := e.st.Get(host)
	if err != nil || vm.State != store.StateReady {
		t.Fatalf("the VM handed to the gone client is %s (%v), want ready again", vm.State, err)
	}
	if c := e.st.Counts()["p"]; c.Running != 0 || c.Ready != 1 {
		t.Fatalf("counts %+v, want the VM ready", c)
	}
	// It is first in line for the next checkout.
	if vms, err := e.svc.Checkout([]Want{{Name: "p", Count: 1}}, Caller{}); err != nil || vms["p"][0].Hostname != host {
		t.Fatalf("next checkout: %v %v, want %s", vms, err, host)
	}

	// Served at the deadline with the client still there: it keeps the VM.
	w = enqueue()
	host = e.ready("p")
	if vms, err := e.svc.leave(context.Background(), w, time.Minute); err != nil || vms["p"][0].Hostname != host {
		t.Fatalf("leave after serve, client there: %v %v, want %s", vms, err, host)
	}

	// Still queued when the client goes: it leaves the queue, nothing served.
	w = enqueue()
	if _, err := e.svc.leave(gone, w, time.Minute); err != context.Canceled || e.queued() != 0 {
		t.Fatalf("leave while queued: %v, %d queued", err, e.queued())
	}
}

// The manager clones for the VMs waiters ask for, beyond the pool's size,
// and a pass that makes one ready serves its waiter.
func TestWaitManagerClonesForWaiters(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 0))
	svc := NewService(e.m.Config, e.st, nil)
	svc.Kick = func() {}
	e.m.Demand = svc.WaitDemand
	e.m.OnReady = svc.ServeWaiters
	e.fp.SetInstantBoot(false)
	out := make(chan waitOutcome, 1)
	go func() {
		vms, err := svc.CheckoutWait(context.Background(), []Want{{Name: "p1", Count: 2}}, Caller{}, time.Minute)
		out <- waitOutcome{vms, err}
	}()
	for svc.WaitDemand()["p1"] != 2 {
		time.Sleep(time.Millisecond)
	}
	e.pass(t)
	if got := e.count(t, "p1", store.StatePending); got != 2 {
		t.Fatalf("pending = %d, want 2 cloned for the waiter of a size-0 pool", got)
	}
	for _, h := range e.fp.Names("vmpooler/p1") {
		e.fp.Boot(h)
	}
	e.pass(t)
	o := got(t, out)
	if o.err != nil || len(o.vms["p1"]) != 2 {
		t.Fatalf("waiter: %v %v", o.vms, o.err)
	}
	e.pass(t)
	if got := e.count(t, "p1", store.StatePending) + e.count(t, "p1", store.StateReady); got != 0 {
		t.Errorf("after the waiter left the pool holds %d VMs, want its size 0", got)
	}
}

// GET /ondemandvm/<id>?wait=N: the long-poll returns at the end of the
// pass that filled the request, or pending at its deadline.
func TestOndemandWait(t *testing.T) {
	e := mustWaitEnv(t, PoolConfig{Name: "p"})
	id, err := e.svc.RequestOndemand([]Want{{Name: "p", Count: 1}}, "", Caller{})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := e.svc.OndemandWait(context.Background(), id, 100*time.Millisecond); err != nil || v.State != store.RequestPending {
		t.Fatalf("at the deadline: %v %v, want pending", v.State, err)
	}
	out := make(chan string, 1)
	go func() {
		v, err := e.svc.OndemandWait(context.Background(), id, time.Minute)
		if err != nil {
			t.Error(err)
		}
		out <- v.State
	}()
	e.svc.PassDone() // a pass that changed nothing: it looks again and waits on
	select {
	case st := <-out:
		t.Fatalf("answered %s before the request was filled", st)
	case <-time.After(50 * time.Millisecond):
	}
	if err := e.st.FinishRequest(id, store.RequestReady, ""); err != nil {
		t.Fatal(err)
	}
	e.svc.PassDone()
	select {
	case st := <-out:
		if st != store.RequestReady {
			t.Errorf("state = %s, want ready", st)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the long-poll did not return after the pass that filled the request")
	}
}

// A checkout that would wait makes the manager clone for it, so it is
// held to what an ondemand request may ask (max_ondemand_instances_per_request,
// 10 by default) and to the caller's quota, at once: before, one anonymous
// request for 40 VMs of a pool of size 1 had the manager clone 43 VMs, and
// a request over its user's quota queued behind another waiter and was
// cloned for. One that can be served now is served, whatever its size.
func TestWaitBounded(t *testing.T) {
	e := mustWaitEnv(t, PoolConfig{Name: "p"}, PoolConfig{Name: "q", MaxRunningPerUser: 1})
	ctx := context.Background()
	_, err := e.svc.CheckoutWait(ctx, []Want{{Name: "p", Count: 40}}, Caller{}, time.Minute)
	if errs.ErrorCode(err) != errs.EFORBIDDEN || e.queued() != 0 || e.svc.WaitDemand()["p"] != 0 {
		t.Fatalf("a wait for 40: %v, %d queued; want EFORBIDDEN, none", err, e.queued())
	}
	for range 11 {
		e.ready("p")
	}
	if vms, err := e.svc.CheckoutWait(ctx, []Want{{Name: "p", Count: 11}}, Caller{}, time.Minute); err != nil || len(vms["p"]) != 11 {
		t.Errorf("11 ready, 11 asked for: %d, %v", len(vms["p"]), err)
	}

	bob := Caller{User: "bob", Auth: true}
	e.ready("q")
	if _, err := e.svc.Checkout([]Want{{Name: "q", Count: 1}}, bob); err != nil {
		t.Fatal(err)
	}
	first := e.wait(ctx, []Want{{Name: "q", Count: 1}}, time.Minute) // holds q
	_, err = e.svc.CheckoutWait(ctx, []Want{{Name: "q", Count: 1}}, bob, time.Minute)
	var qe *store.QuotaError
	if !errors.As(err, &qe) || e.queued() != 1 {
		t.Errorf("bob over his quota behind another waiter: %v, %d queued; want a QuotaError, not queued", err, e.queued())
	}
	e.ready("q")
	if o := got(t, first); o.err != nil {
		t.Error(o.err)
	}
}
