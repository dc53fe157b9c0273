package pool

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/store"
)

func TestManagerOndemand(t *testing.T) {
	e := mustManager(t, func(c *Config) { c.OndemandCloneLimit = 1 }, mgrTestPool("p1", 0))
	req := store.Request{ID: "r1", Requested: []store.PoolCount{{Pool: "p1", Count: 2}}, User: "alice"}
	if err := e.st.CreateRequest(req); err != nil {
		t.Fatal(err)
	}
	e.fp.HoldClones()
	if err := e.m.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.count(t, "p1", store.StatePending); got != 1 {
		t.Fatalf("pending = %d, want 1 (ondemand_clone_limit)", got)
	}
	e.fp.ReleaseClones()
	e.m.Wait()
	for range 3 {
		e.pass(t)
	}
	r, err := e.st.GetRequest("r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.RequestReady || len(r.Hosts["p1"]) != 2 {
		t.Fatalf("request = %+v, want ready with 2 hosts", r)
	}
	for _, h := range r.Hosts["p1"] {
		if vm := e.get(t, h); vm.State != store.StateRunning || vm.User != "alice" {
			t.Errorf("%s = %s user %q, want running for alice", h, vm.State, vm.User)
		}
	}
	if got := e.count(t, "p1", store.StateReady); got != 0 {
		t.Errorf("size 0 pool has %d ready", got)
	}
}

func TestManagerOndemandExpires(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 0))
	e.fp.SetInstantBoot(false)
	if err := e.st.CreateRequest(store.Request{ID: "r1", Requested: []store.PoolCount{{Pool: "p1", Count: 1}}}); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	host := e.states(t, "p1")[store.StatePending][0]
	e.clk.Advance(6 * time.Minute)
	e.pass(t)
	r, err := e.st.GetRequest("r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.RequestFailed || r.Error != "not filled within 5m" {
		t.Fatalf("request = %s %q", r.State, r.Error)
	}
	e.pass(t)
	if vm := e.get(t, host); vm.State != store.StateDestroyed {
		t.Errorf("pending vm of the failed request = %s, want destroyed", vm.State)
	}
	if got := e.fp.Calls("Clone"); got != 1 {
		t.Errorf("clones = %d, want 1", got)
	}
}

func TestManagerJobs(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fillReady(t, "p1", 1)
	vm := e.checkout(t, "p1")
	h := vm.Hostname
	if err := e.st.RequestSnapshot(h, "s1", store.Anyone); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RequestDisk(h, 8, store.Anyone); err != nil {
		t.Fatal(err)
	}
	e.pass(t) // snapshot (one job per VM at a time)
	e.pass(t) // disk
	if err := e.st.RequestRevert(h, "s1", store.Anyone); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	got := e.get(t, h)
	if len(got.Snapshots) != 1 || got.Snapshots[0].State != store.JobDone || got.Snapshots[0].Reverts != 1 {
		t.Errorf("snapshots = %+v, want s1 done, reverted once", got.Snapshots)
	}
	if len(got.Disks) != 1 || got.Disks[0].State != store.JobDone {
		t.Errorf("disks = %+v, want one done", got.Disks)
	}
	fv, _ := e.fp.VM(h)
	if len(fv.Snapshots) != 1 || len(fv.Disks) != 1 || fv.Disks[0] != 8 {
		t.Errorf("provider vm = %+v", fv)
	}
	if jobs, _ := e.st.Jobs(); len(jobs) != 0 {
		t.Errorf("jobs left = %+v", jobs)
	}

	e.fp.SetJobError(errors.New("disk full"))
	if err := e.st.RequestSnapshot(h, "s2", store.Anyone); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	got = e.get(t, h)
	if s := got.Snapshots[1]; s.State != store.JobFailed || !strings.Contains(s.Error, "disk full") {
		t.Errorf("failed snapshot = %+v", s)
	}

	e.fp.SetJobError(fmt.Errorf("busy: %w", ErrTransient))
	if err := e.st.RequestDisk(h, 4, store.Anyone); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	if jobs, _ := e.st.Jobs(); len(jobs) != 1 {
		t.Errorf("transient failure: jobs = %d, want still queued", len(jobs))
	}
	e.fp.SetJobError(nil)
	e.pass(t)
	if jobs, _ := e.st.Jobs(); len(jobs) != 0 {
		t.Errorf("after recovery: jobs = %d, want 0", len(jobs))
	}
}

// A pool's snapshot_memory reaches the provider (default: with memory).
func TestManagerJobsSnapshotMemory(t *testing.T) {
	noMem := mgrTestPool("big", 1)
	noMem.SnapshotMemory = new(bool)
	e := mustManager(t, nil, mgrTestPool("p1", 1), noMem)
	e.pass(t)
	e.pass(t)
	for _, c := range []struct {
		pool string
		want bool
	}{{"p1", true}, {"big", false}} {
		h := e.checkout(t, c.pool).Hostname
		if err := e.st.RequestSnapshot(h, "s1", store.Anyone); err != nil {
			t.Fatal(err)
		}
		e.pass(t)
		if fv, _ := e.fp.VM(h); len(fv.Memory) != 1 || fv.Memory[0] != c.want {
			t.Errorf("pool %s: snapshot memory %v, want [%v]", c.pool, fv.Memory, c.want)
		}
	}
}

// A job whose attempt failed transiently after the provider had done the
// work (a wait cut short) is attempted again with the same snapshot name
// and disk id, so it ends done with one snapshot and one disk.
func TestManagerJobRetrySameIdentity(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fillReady(t, "p1", 1)
	h := e.checkout(t, "p1").Hostname
	e.fp.SetJobError(fmt.Errorf("wait cut short: %w", ErrTransient))
	e.fp.SetJobDoneAnyway(true)
	if err := e.st.RequestSnapshot(h, "s1", store.Anyone); err != nil {
		t.Fatal(err)
	}
	if err := e.st.RequestDisk(h, 8, store.Anyone); err != nil {
		t.Fatal(err)
	}
	// One job per VM at a time: the snapshot (made, reported transient),
	// the snapshot again (found by name), the disk, the disk again.
	for i, queued := range []int{2, 1, 1, 0} {
		e.pass(t)
		if jobs, _ := e.st.Jobs(); len(jobs) != queued {
			t.Fatalf("after pass %d: jobs = %+v, want %d queued", i+1, jobs, queued)
		}
	}
	got := e.get(t, h)
	if len(got.Snapshots) != 1 || got.Snapshots[0].State != store.JobDone {
		t.Errorf("snapshots = %+v, want s1 done", got.Snapshots)
	}
	if len(got.Disks) != 1 || got.Disks[0].State != store.JobDone {
		t.Errorf("disks = %+v, want one done", got.Disks)
	}
	fv, _ := e.fp.VM(h)
	if len(fv.Snapshots) != 1 || len(fv.Disks) != 1 {
		t.Errorf("provider vm: snapshots %v, disks %v (ids %v), want one of each", fv.Snapshots, fv.Disks, fv.DiskIDs)
	}
	if e.fp.Calls("AddDisk") != 2 || e.fp.Calls("Snapshot") != 2 {
		t.Errorf("calls: AddDisk %d, Snapshot %d, want 2 each", e.fp.Calls("AddDisk"), e.fp.Calls("Snapshot"))
	}
}

func TestManagerOndemandNoExtraClones(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 0), mgrTestPool("p2", 0))
	req := store.Request{ID: "r1", Requested: []store.PoolCount{{Pool: "p1", Count: 2}, {Pool: "p2", Count: 1}}}
	if err := e.st.CreateRequest(req); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		e.pass(t)
	}
	r, err := e.st.GetRequest("r1")
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.RequestReady || len(r.Hosts["p1"]) != 2 || len(r.Hosts["p2"]) != 1 {
		t.Fatalf("request = %+v", r)
	}
	if got := e.fp.Calls("Clone"); got != 3 {
		t.Errorf("clones = %d, want 3", got)
	}
}

// mgrObserver records what the manager reports.
type mgrObserver struct {
	mu                   sync.Mutex
	clones, boots, fails int
	ops                  []string
	failed               []string // pool/cause
}

func (o *mgrObserver) VMFailed(pool, cause string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed = append(o.failed, pool+"/"+cause)
}

func (o *mgrObserver) CloneFinished(pool string, d time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.clones++
	if err != nil {
		o.fails++
	}
}

func (o *mgrObserver) VMReady(pool string, boot time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.boots++
}

func (o *mgrObserver) ProviderError(op string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ops = append(o.ops, op)
}

func TestManagerObserver(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 2))
	o := &mgrObserver{}
	e.m.Observer = o
	e.fillReady(t, "p1", 2)
	e.fp.SetDown(fmt.Errorf("down: %w", ErrTransient))
	e.clk.Advance(time.Minute)
	e.pass(t)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.clones != 2 || o.fails != 0 || o.boots != 2 || strings.Join(o.ops, ",") != "list" {
		t.Errorf("observed clones=%d fails=%d boots=%d ops=%v", o.clones, o.fails, o.boots, o.ops)
	}
}

// Each VM the manager takes out is reported with its cause, for
// vmpooler_vms_failed_total: here a checked-out VM's lifetime and a ready
// VM's ready_ttl ending, and a VM gone from vSphere.
func TestManagerObservesFailures(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 2))
	o := &mgrObserver{}
	e.m.Observer = o
	hosts := e.fillReady(t, "p1", 2)
	e.checkout(t, "p1")
	e.fp.Vanish(hosts[1])
	e.clk.Advance(25 * time.Hour)
	e.pass(t)
	o.mu.Lock()
	defer o.mu.Unlock()
	slices.Sort(o.failed)
	if want := []string{"p1/lifetime", "p1/vanished"}; !slices.Equal(o.failed, want) {
		t.Errorf("failed = %v, want %v", o.failed, want)
	}
}
