package pool

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/store"
)

// Clones carry this pooler's marker; a VM in a pool folder without it, or
// with another instance's, is foreign: never destroyed, through many passes
// and a restart, logged once, and reported in Health.
func TestManagerForeignVMsUntouched(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 2))
	e.fillReady(t, "p1", 2)
	for _, h := range e.states(t, "p1")[store.StateReady] {
		if vm, _ := e.fp.VM(h); vm.Info.Owner != (Owner{Instance: e.st.Instance(), Pool: "p1"}) {
			t.Fatalf("clone %s carries marker %+v, want this instance's", h, vm.Info.Owner)
		}
	}
	foreign := map[string]VMInfo{
		"handmade":      {Name: "handmade", PoweredOn: true, ToolsRunning: true, IP: "10.1.1.1"},
		"tpl-patching":  {Name: "tpl-patching"}, // a template converted to a VM, powered off
		"other-pooler1": {Name: "other-pooler1", PoweredOn: true, Owner: Owner{Instance: "aaaaaaaaaaaaaaaa", Pool: "p1"}},
	}
	for _, info := range foreign {
		e.fp.Add("DC0", "vmpooler/p1", info)
	}
	for i := range 10 {
		e.pass(t)
		e.clk.Advance(time.Minute)
		if i == 4 { // a restart half way
			if err := e.m.Close(); err != nil {
				t.Fatal(err)
			}
			e = e.restart(t, e.st, nil, mgrTestPool("p1", 2))
		}
	}
	for name, info := range foreign {
		vm, ok := e.fp.VM(name)
		if !ok {
			t.Errorf("foreign vm %s destroyed", name)
			continue
		}
		if vm.Info.PoweredOn != info.PoweredOn {
			t.Errorf("foreign vm %s power changed to %v", name, vm.Info.PoweredOn)
		}
	}
	if r := e.fp.Refused(); len(r) != 0 {
		t.Errorf("manager tried to destroy foreign vms %v", r)
	}
	h := e.m.Health()["p1"]
	want := []string{"DC0/vm/vmpooler/p1/handmade", "DC0/vm/vmpooler/p1/other-pooler1", "DC0/vm/vmpooler/p1/tpl-patching"}
	if !slices.Equal(h.Foreign, want) {
		t.Errorf("Health foreign = %v, want %v", h.Foreign, want)
	}
	// Logged once per VM per manager (the second manager logs them anew).
	if n := strings.Count(e.log.String(), "path=DC0/vm/vmpooler/p1/handmade"); n != 1 {
		t.Errorf("handmade logged %d times by the second manager, want 1:\n%s", n, e.log)
	}
	if got := e.count(t, "p1", store.StateReady); got != 2 {
		t.Errorf("ready = %d, want 2 (foreign VMs do not count)", got)
	}
}

// A second pooler with a fresh database on the same folders destroys
// nothing the first one made, checked-out VMs included (E6's cousin: the
// database moved with the working directory).
func TestManagerFreshDatabaseDestroysNothing(t *testing.T) {
	e1 := mustManager(t, nil, mgrTestPool("p1", 3))
	e1.fillReady(t, "p1", 3)
	running := e1.checkout(t, "p1")
	first := e1.fp.Names("vmpooler/p1")
	if err := e1.m.Close(); err != nil {
		t.Fatal(err)
	}

	st2 := storetest.MustOpen(t, storetest.Now(e1.clk.Now))
	if st2.Instance() == e1.st.Instance() {
		t.Fatal("two databases share an instance id")
	}
	e2 := e1.restart(t, st2, nil, mgrTestPool("p1", 3))
	for range 5 {
		e2.pass(t)
		e2.clk.Advance(time.Minute)
	}
	for _, name := range first {
		if _, ok := e2.fp.VM(name); !ok {
			t.Errorf("the second pooler destroyed %s of the first (running: %v)", name, name == running.Hostname)
		}
	}
	if got := len(e2.m.Health()["p1"].Foreign); got != len(first) {
		t.Errorf("foreign = %d, want %d", got, len(first))
	}
	if got := e2.count(t, "p1", store.StateReady); got != 3 {
		t.Errorf("second pooler ready = %d, want its own 3", got)
	}
}

// A record the store knows whose VM turns out to carry another instance's
// marker is not destroyed: the record is closed and the VM left alone.
func TestManagerKnownVMWithOtherMarkerIsKept(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 0))
	if err := e.st.AddPending(store.VM{Hostname: "clash", Pool: "p1", Template: "templates/p1"}); err != nil {
		t.Fatal(err)
	}
	if err := e.st.Fail("clash", store.StatePending, "test"); err != nil {
		t.Fatal(err)
	}
	e.fp.Add("DC0", "vmpooler/p1", VMInfo{Name: "clash", PoweredOn: true, Owner: Owner{Instance: "bbbbbbbbbbbbbbbb"}})
	e.pass(t)
	if _, ok := e.fp.VM("clash"); !ok {
		t.Fatal("a VM marked by another instance was destroyed")
	}
	if vm := e.get(t, "clash"); vm.State != store.StateDestroyed || !strings.Contains(vm.Reason, "not created by this pooler") {
		t.Errorf("record = %s %q, want destroyed, left in vSphere", vm.State, vm.Reason)
	}
	e.pass(t)
	if r := e.fp.Refused(); len(r) != 1 {
		t.Errorf("destroy attempts refused = %v, want exactly one", r)
	}
}

// Adopting a lost database's instance: its checked-out VMs become running
// here, its others are destroyed and refilled.
func TestManagerAdopt(t *testing.T) {
	e1 := mustManager(t, nil, mgrTestPool("p1", 2))
	e1.fillReady(t, "p1", 2)
	running := e1.checkout(t, "p1")
	e1.pass(t) // annotates the running VM with its checkout
	ready := e1.states(t, "p1")[store.StateReady]
	old := e1.st.Instance()
	if err := e1.m.Close(); err != nil {
		t.Fatal(err)
	}

	path := filepath.Join(t.TempDir(), "b.db")
	st2 := storetest.MustOpen(t, storetest.Path(path), storetest.Now(e1.clk.Now))
	if err := st2.Adopt(old); err != nil {
		t.Fatal(err)
	}
	if err := st2.Adopt(st2.Instance()); errs.ErrorCode(err) != errs.EINVALID {
		t.Errorf("adopting its own instance: %v, want EINVALID", err)
	}
	if err := st2.Close(); err != nil {
		t.Fatal(err)
	}
	st2 = storetest.MustOpen(t, storetest.Path(path), storetest.Now(e1.clk.Now)) // Adopt takes effect at the next open
	e2 := e1.restart(t, st2, nil, mgrTestPool("p1", 2))
	e2.pass(t)
	vm := e2.get(t, running.Hostname)
	if vm.State != store.StateRunning || !vm.CheckedOut.Equal(running.CheckedOut) {
		t.Errorf("adopted running vm = %s checked out %v, want running since %v", vm.State, vm.CheckedOut, running.CheckedOut)
	}
	for _, h := range ready {
		if _, ok := e2.fp.VM(h); ok {
			t.Errorf("adopted ready vm %s not destroyed", h)
		}
	}
	if _, ok := e2.fp.VM(running.Hostname); !ok {
		t.Error("adopted running vm destroyed")
	}
}

// A pool whose new VMs always fail their ready check clones `size` VMs
// once, then one probe at a time after a pause doubling per failed pass:
// over one simulated hour with timeout 15m and size 4 that is 4 + 3 = 7
// clones (16 without the backoff). One VM that proves ready ends it.
func TestManagerReadyFailuresBackOff(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 4))
	e.fp.SetReadyFunc(func(VMInfo) (bool, string) { return false, "tcp 10.0.0.1:22: connection refused" })
	for range 120 { // one hour of passes, every 30 s
		e.pass(t)
		e.clk.Advance(30 * time.Second)
	}
	clones := e.fp.Calls("Clone")
	if clones > 7 {
		t.Errorf("clones in one hour = %d, want at most 7", clones)
	}
	h := e.m.Health()["p1"]
	if !strings.Contains(h.ReadyFailure, "connection refused") || h.ReadyFailedPasses != 3 {
		t.Errorf("health = %+v, want the failure reason after 3 failed passes", h)
	}
	if n := strings.Count(e.log.String(), "new vms fail their ready check"); n != 1 {
		t.Errorf("transition logged %d times, want once", n)
	}
	t.Logf("clones in one simulated hour: %d", clones)

	e.fp.SetReadyFunc(nil) // the network is fixed
	for range 120 {
		e.pass(t)
		e.clk.Advance(30 * time.Second)
		if e.count(t, "p1", store.StateReady) == 4 {
			break
		}
	}
	if got := e.count(t, "p1", store.StateReady); got != 4 {
		t.Fatalf("after recovery ready = %d, want 4", got)
	}
	if h := e.m.Health()["p1"]; h.ReadyFailure != "" {
		t.Errorf("health after recovery = %+v, want clear", h)
	}
	if !strings.Contains(e.log.String(), "pass their ready check again") {
		t.Error("recovery not logged")
	}
}

// A VM from a database made before ownership markers (a record, no marker)
// is still this pooler's: it is handed out and destroyed as before.
func TestManagerLegacyUnmarkedRecord(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	if err := e.st.AddPending(store.VM{Hostname: "legacy123456789", Pool: "p1", Template: "templates/p1"}); err != nil {
		t.Fatal(err)
	}
	e.fp.Add("DC0", "vmpooler/p1", VMInfo{Name: "legacy123456789", PoweredOn: true, ToolsRunning: true,
		IP: "10.7.7.7", GuestHostname: "legacy123456789"})
	e.pass(t)
	if vm := e.get(t, "legacy123456789"); vm.State != store.StateReady {
		t.Fatalf("legacy vm = %s, want ready", vm.State)
	}
	vm := e.checkout(t, "p1")
	if err := e.st.Return(vm.Hostname, "returned by user", store.Anyone); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	if _, ok := e.fp.VM("legacy123456789"); ok {
		t.Error("returned legacy vm not destroyed")
	}
}

// An annotation vCenter refuses (a missing privilege) is tried once per
// VM, not on every pass; a transient failure is tried again.
func TestManagerAnnotateRefusedOncePerVM(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fillReady(t, "p1", 1)
	for _, step := range []struct {
		err    error // of every annotation of a VM checked out now
		passes int
		want   int // annotations tried in all
	}{
		{fmt.Errorf("lacks privilege Global.SetCustomField: %w", ErrPermission), 5, 1}, // once
		{fmt.Errorf("vCenter busy: %w", ErrTransient), 3, 1 + 3},                       // every pass
	} {
		e.checkout(t, "p1")
		e.fp.SetAnnotateError(step.err)
		for range step.passes {
			e.pass(t)
		}
		if n := e.fp.Calls("Annotate"); n != step.want {
			t.Errorf("%v: annotations after %d passes = %d, want %d", step.err, step.passes, n, step.want)
		}
	}
}

// Clones failing for lack of capacity back off, and the pool's health says
// why until one succeeds.
func TestManagerCloneFailureInHealth(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fp.SetCloneError(func(CloneSpec) error {
		return fmt.Errorf("clone: InsufficientStorageSpace: %w: %w", ErrCapacity, ErrTransient)
	})
	e.pass(t)
	h := e.m.Health()["p1"]
	if !strings.Contains(h.CloneFailure, "InsufficientStorageSpace") || h.CloneFailures != 1 || !h.CloneRetry.After(e.clk.Now()) {
		t.Fatalf("health after a capacity failure = %+v", h)
	}
	e.fp.SetCloneError(nil)
	e.clk.Advance(time.Minute)
	e.pass(t)
	if h := e.m.Health()["p1"]; h.CloneFailure != "" {
		t.Errorf("health after a successful clone = %+v, want clear", h)
	}
}
