package pool

import (
	"testing"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// TestManagerSetConfig drives a reload through Manager.SetConfig and
// Service.SetConfig: a pool resized, a pool added, a pool removed (its
// ready VMs destroyed, its running VM kept to its lifetime, then the pool
// forgotten) and a template changed (the old VMs drained).
func TestManagerSetConfig(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("a", 2), mgrTestPool("b", 2), mgrTestPool("c", 1))
	svc := NewService(e.m.Config, e.st, nil)
	e.pass(t)
	e.pass(t)
	running := e.checkout(t, "b")
	if _, err := svc.Checkout([]Want{{Name: "b", Count: 1}}, Caller{}); err != nil {
		t.Fatalf("checkout b before reload: %v", err)
	}
	oldC := e.states(t, "c")[store.StateReady]
	e.pass(t)
	e.pass(t)

	// The override of b must not keep it filling once it is removed.
	if err := e.st.PutOverride("b", store.Override{Size: ptr(5)}); err != nil {
		t.Fatal(err)
	}
	c := mgrTestPool("c", 1)
	c.Template = "templates/c-v2"
	next := &Config{Pools: []PoolConfig{mgrTestPool("a", 4), c, mgrTestPool("d", 1)}}
	next.Defaults()
	e.m.SetConfig(next)
	svc.SetConfig(next, nil)

	if _, err := svc.Checkout([]Want{{Name: "b", Count: 1}}, Caller{}); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("checkout of a removed pool: err %v, want ENOTFOUND", err)
	}
	if got, want := svc.Pools(), []string{"a", "c", "d"}; len(got) != len(want) || got[2] != "d" {
		t.Errorf("pools = %v, want %v", got, want)
	}
	e.pass(t) // destroys b's ready VMs and c's old one, clones for a, c, d
	e.pass(t) // ready checks
	e.pass(t)
	for _, tc := range []struct {
		pool  string
		state store.State
		want  int
	}{
		{"a", store.StateReady, 4},
		{"d", store.StateReady, 1},
		{"c", store.StateReady, 1},
		{"b", store.StateReady, 0},
		{"b", store.StatePending, 0},
		{"b", store.StateRunning, 2},
	} {
		if got := e.count(t, tc.pool, tc.state); got != tc.want {
			t.Errorf("pool %s %s = %d, want %d", tc.pool, tc.state, got, tc.want)
		}
	}
	if vm := e.get(t, oldC[0]); vm.State != store.StateDestroyed {
		t.Errorf("vm of the old template of c is %s, want destroyed", vm.State)
	}
	for _, h := range e.states(t, "c")[store.StateReady] {
		if vm := e.get(t, h); vm.Template != "templates/c-v2" {
			t.Errorf("c's ready vm has template %q", vm.Template)
		}
	}
	if o, _ := e.st.Overrides(); o["b"] != (store.Override{}) {
		t.Errorf("override of removed pool b kept: %+v", o["b"])
	}

	// The running VMs of b live out their lifetime, then b is forgotten.
	e.clk.Advance(25 * 60 * 60e9)
	e.pass(t)
	e.pass(t)
	if vm := e.get(t, running.Hostname); vm.State != store.StateDestroyed {
		t.Errorf("running vm of removed pool after its lifetime: %s", vm.State)
	}
	e.pass(t)
	for _, p := range e.m.Config.Pools {
		if p.Name == "b" {
			t.Errorf("drained removed pool b still in the manager's pools")
		}
	}
}

func ptr[T any](v T) *T { return &v }

// Requests and passes run while the configuration is swapped: with -race
// this shows SetConfig needs no other synchronisation from its callers.
func TestSetConfigWhileServing(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("a", 3), mgrTestPool("b", 3))
	svc := NewService(e.m.Config, e.st, nil)
	svc.Health = e.m.Health
	e.pass(t)
	e.pass(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			vms, err := svc.Checkout([]Want{{Name: "a", Count: 1}}, Caller{})
			if err == nil {
				svc.Return(vms["a"][0].Hostname, Caller{})
			}
			svc.Pools()
			svc.Status()
			svc.Resolve("b")
			svc.Effective()
			e.m.Health()
		}
	}()
	for i := range 20 {
		next := &Config{Pools: []PoolConfig{mgrTestPool("a", 1+i%3)}}
		if i%2 == 0 {
			next.Pools = append(next.Pools, mgrTestPool("b", 2))
		}
		next.Defaults()
		svc.SetConfig(next, map[string]string{"url": "^(.*)/"})
		e.m.SetConfig(next)
		e.pass(t)
	}
	<-done
}
