package store

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
)

func TestAddPending(t *testing.T) {
	s := MustOpenStore(t)
	if err := s.AddPending(VM{Hostname: "h1", Pool: "p", Template: "tpl", State: StateRunning}); err != nil {
		t.Fatal(err)
	}
	vm, err := s.Get("h1")
	if err != nil {
		t.Fatal(err)
	}
	if vm.State != StatePending || vm.Started.IsZero() || vm.Template != "tpl" {
		t.Errorf("got %+v, want pending with Started set", vm)
	}
	t.Run("Exists", func(t *testing.T) {
		mustCode(t, s.AddPending(VM{Hostname: "h1", Pool: "p"}), errs.ECONFLICT)
	})
	t.Run("ExistsDestroyed", func(t *testing.T) {
		if err := s.Destroy("h1", "gone"); err != nil {
			t.Fatal(err)
		}
		mustCode(t, s.AddPending(VM{Hostname: "h1", Pool: "p"}), errs.ECONFLICT)
	})
	t.Run("Invalid", func(t *testing.T) {
		mustCode(t, s.AddPending(VM{Pool: "p"}), errs.EINVALID)
		mustCode(t, s.AddPending(VM{Hostname: "x"}), errs.EINVALID)
		mustCode(t, s.AddPending(VM{Hostname: "x", Pool: "a\x00b"}), errs.EINVALID)
		mustCode(t, s.AddPending(VM{Hostname: strings.Repeat("x", 256), Pool: "p"}), errs.EINVALID)
	})
}

func TestMarkCloned(t *testing.T) {
	s := MustOpenStore(t)
	mustCode(t, s.MarkCloned("nope"), errs.ENOTFOUND)
	s.AddPending(VM{Hostname: "h1", Pool: "p"})
	if err := s.MarkCloned("h1"); err != nil {
		t.Fatal(err)
	}
	if vm, _ := s.Get("h1"); vm.Cloned.IsZero() {
		t.Error("Cloned not set")
	}
	s.MarkReady("h1", "")
	mustCode(t, s.MarkCloned("h1"), errs.ECONFLICT)
}

func TestMarkReady(t *testing.T) {
	clk := newTestClock()
	s := MustOpenStoreAt(t, t.TempDir()+"/x.db", clk)
	s.AddPending(VM{Hostname: "h1", Pool: "p"}) // Started = T
	clk.Advance(10 * time.Second)
	s.MarkCloned("h1") // Cloned = T+10s+1ms
	clk.Advance(20 * time.Second)
	if err := s.MarkReady("h1", "10.1.2.3"); err != nil { // Ready = T+30s+2ms
		t.Fatal(err)
	}
	vm, _ := s.Get("h1")
	if vm.State != StateReady || vm.IP != "10.1.2.3" || vm.Ready.IsZero() {
		t.Errorf("got %+v, want ready with ip", vm)
	}
	if got := s.Counts()["p"]; got.Ready != 1 || got.Pending != 0 || !got.LastReady.Equal(vm.Ready) {
		t.Errorf("counts: got %+v", got)
	}
	day := vm.Ready.Format(dateLayout)
	r, _ := s.Rollups(day, day)
	if c := r[0].Clone["p"]; c.Count != 1 || c.Sum != 10.001 {
		t.Errorf("clone rollup: got %+v, want one of 10.001s", c)
	}
	if b := r[0].Boot["p"]; b.Count != 1 || b.Sum != 20.001 || b.Min != 20.001 || b.Max != 20.001 {
		t.Errorf("boot rollup: got %+v, want one of 20.001s", b)
	}

	t.Run("NotPending", func(t *testing.T) { mustCode(t, s.MarkReady("h1", ""), errs.ECONFLICT) })
	t.Run("Unknown", func(t *testing.T) { mustCode(t, s.MarkReady("nope", ""), errs.ENOTFOUND) })
	t.Run("WithoutClone", func(t *testing.T) {
		s.AddPending(VM{Hostname: "h2", Pool: "p"})
		clk.Advance(5 * time.Second)
		s.MarkReady("h2", "")
		r, _ := s.Rollups(day, day)
		if c, b := r[0].Clone["p"], r[0].Boot["p"]; c.Count != 1 || b.Count != 2 || b.Min != 5.001 || b.Max != 20.001 {
			t.Errorf("got clone %+v boot %+v, want boot from Started", c, b)
		}
	})
}

func TestReturn(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 2)
	vms, _ := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}})
	if err := s.Return(vms[0].Hostname, "user", Anyone); err != nil {
		t.Fatal(err)
	}
	vm, _ := s.Get(vms[0].Hostname)
	if vm.State != StateCompleted || vm.Completed.IsZero() || vm.Reason != "user" {
		t.Errorf("got %+v", vm)
	}
	mustCode(t, s.Return(vms[0].Hostname, "", Anyone), errs.ENOTFOUND) // completed
	mustCode(t, s.Return("p-1", "", Anyone), errs.ENOTFOUND)           // ready
	mustCode(t, s.Return("nope", "", Anyone), errs.ENOTFOUND)
}

func TestFail(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 2)
	s.AddPending(VM{Hostname: "pend", Pool: "p"})
	vms, _ := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}})
	for _, h := range []string{"pend", "p-1", vms[0].Hostname} {
		if err := s.Fail(h, "", "broken"); err != nil {
			t.Fatal(err)
		}
		if vm, _ := s.Get(h); vm.State != StateCompleted || vm.Reason != "broken" {
			t.Errorf("%s: got %+v", h, vm)
		}
	}
	if err := s.Fail("pend", "", "again"); err != nil {
		t.Errorf("fail of completed: %v", err)
	}
	if vm, _ := s.Get("pend"); vm.Reason != "broken" {
		t.Errorf("completed vm changed: %+v", vm)
	}
	s.Destroy("pend", "")
	mustCode(t, s.Fail("pend", "", ""), errs.ENOTFOUND)
	mustCode(t, s.Fail("nope", "", ""), errs.ENOTFOUND)
	if got := s.Counts()["p"]; got.Completed != 2 || got.Ready+got.Running+got.Pending != 0 {
		t.Errorf("counts: %+v", got)
	}
}

// A ready check that decided to fail a VM must not fail it once a
// checkout took it: Fail with from = ready then answers ECONFLICT.
func TestFailFromGuardsCheckout(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 1)
	vms, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}})
	if err != nil {
		t.Fatal(err)
	}
	h := vms[0].Hostname
	mustCode(t, s.Fail(h, StateReady, "ready_ttl expired"), errs.ECONFLICT)
	if vm, _ := s.Get(h); vm.State != StateRunning {
		t.Errorf("running vm was failed: %+v", vm)
	}
	if err := s.Fail(h, StateRunning, "lifetime expired"); err != nil {
		t.Fatal(err)
	}
	mustCode(t, s.Fail(h, StateRunning, "again"), errs.ECONFLICT)
}

func TestDestroyAndPurge(t *testing.T) {
	clk := newTestClock()
	s := MustOpenStoreAt(t, t.TempDir()+"/x.db", clk)
	s.Retention = time.Hour
	fillReady(t, s, "p", "", 3)
	s.AddPending(VM{Hostname: "pend", Pool: "p"})
	vms, _ := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}})
	s.Fail("p-2", "", "")
	for _, h := range []string{"pend", "p-1", vms[0].Hostname, "p-2"} { // pending, ready, running, completed
		if err := s.Destroy(h, "gone"); err != nil {
			t.Fatal(err)
		}
		if vm, _ := s.Get(h); vm.State != StateDestroyed || vm.Destroyed.IsZero() {
			t.Errorf("%s: got %+v", h, vm)
		}
	}
	if err := s.Destroy("p-1", "twice"); err != nil {
		t.Errorf("destroy of destroyed: %v", err)
	}
	mustCode(t, s.Destroy("nope", ""), errs.ENOTFOUND)
	if got := s.Counts()["p"]; got != (PoolCounts{LastReady: got.LastReady}) {
		t.Errorf("counts: %+v, want all zero", got)
	}
	if got, _ := s.List("p", StateDestroyed); len(got) != 4 {
		t.Errorf("destroyed list: got %d, want 4", len(got))
	}

	if n, err := s.Purge(); err != nil || n != 0 {
		t.Errorf("early purge: got %d, %v; want 0", n, err)
	}
	clk.Advance(time.Hour)
	if n, err := s.Purge(); err != nil || n != 4 {
		t.Errorf("purge: got %d, %v; want 4", n, err)
	}
	mustCode(t, func() error { _, err := s.Get("p-1"); return err }(), errs.ENOTFOUND)
	if err := s.AddPending(VM{Hostname: "p-1", Pool: "p"}); err != nil {
		t.Errorf("hostname reuse after purge: %v", err)
	}
}

func TestModify(t *testing.T) {
	clk := newTestClock()
	s := MustOpenStoreAt(t, t.TempDir()+"/x.db", clk)
	fillReady(t, s, "p", "", 2)
	if _, err := s.Modify("p-0", 12, map[string]string{"a": "1"}); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Fatalf("modify a ready vm: got %v, want errs.ENOTFOUND (tags would follow it to its next user)", err)
	}
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}}); err != nil {
		t.Fatal(err)
	}
	vm, err := s.Modify("p-0", 12, map[string]string{"a": "1", "b": "2"})
	if err != nil {
		t.Fatal(err)
	}
	if vm.Lifetime != 12 || vm.Tags["a"] != "1" || vm.Tags["b"] != "2" {
		t.Errorf("got %+v", vm)
	}
	vm, _ = s.Modify("p-0", 0, map[string]string{"a": "1", "b": "3"})
	if vm.Lifetime != 12 || vm.Tags["b"] != "3" {
		t.Errorf("got %+v, want lifetime kept and b=3", vm)
	}
	if got, _ := s.Get("p-0"); !slices.Equal([]string{got.Tags["a"], got.Tags["b"]}, []string{"1", "3"}) {
		t.Errorf("stored: %+v", got)
	}
	day := clk.Now().Format(dateLayout)
	r, _ := s.Rollups(day, day)
	want := map[string]map[string]int{"a": {"1": 1}, "b": {"2": 1, "3": 1}}
	for tag, vals := range want {
		for v, n := range vals {
			if r[0].Tags[tag][v] != n {
				t.Errorf("tag %s=%s counted %d times, want %d", tag, v, r[0].Tags[tag][v], n)
			}
		}
	}
	t.Run("Errors", func(t *testing.T) {
		_, err := s.Modify("nope", 1, nil)
		mustCode(t, err, errs.ENOTFOUND)
		_, err = s.Modify("p-0", -1, nil)
		mustCode(t, err, errs.EINVALID)
		_, err = s.Modify("p-0", 0, map[string]string{"": "x"})
		mustCode(t, err, errs.EINVALID)
		_, err = s.Modify("p-0", 0, map[string]string{"a\x00b": "x"})
		mustCode(t, err, errs.EINVALID)
		s.Destroy("p-0", "")
		_, err = s.Modify("p-0", 1, nil)
		mustCode(t, err, errs.ENOTFOUND)
	})
}

func TestList(t *testing.T) {
	s := MustOpenStore(t)
	hosts := fillReady(t, s, "p", "", 4)
	fillReady(t, s, "q.dots", "", 1)
	s.AddPending(VM{Hostname: "pend", Pool: "p"})
	s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}})

	ready, err := s.List("p", StateReady)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(ready); !slices.Equal(got, hosts[1:]) {
		t.Errorf("ready: got %v, want %v", got, hosts[1:])
	}
	all, _ := s.ListPool("p")
	if got, want := names(all), []string{"pend", "p-1", "p-2", "p-3", "p-0"}; !slices.Equal(got, want) {
		t.Errorf("pool: got %v, want %v", got, want)
	}
	if got, _ := s.List("nope", StateReady); len(got) != 0 {
		t.Errorf("unknown pool: got %v", got)
	}
	_, err = s.List("p", "bogus")
	mustCode(t, err, errs.EINVALID)
	pools, _ := s.Pools()
	if !slices.Equal(pools, []string{"p", "q.dots"}) {
		t.Errorf("pools: got %v", pools)
	}
	s.Destroy("q.dots-0", "")
	if pools, _ := s.Pools(); !slices.Equal(pools, []string{"p"}) {
		t.Errorf("pools after destroy: got %v", pools)
	}
}

func names(vms []VM) []string {
	var out []string
	for _, vm := range vms {
		out = append(out, vm.Hostname)
	}
	return out
}
