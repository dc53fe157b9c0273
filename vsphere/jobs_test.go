package vsphere

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// snapshotCall is what a CreateSnapshot_Task call asked for.
type snapshotCall struct {
	Name             string
	Memory, Quiesced bool
}

// vcenterHooks sees every call to the simulator (Registry.Handler): it
// records CreateSnapshot_Task's arguments and counts PowerOnVM_Task calls,
// and it makes a revert to a snapshot taken without memory leave the VM
// powered off, as vCenter does (the API: such a snapshot's power state is
// "powered off"); the simulator itself leaves the power state alone.
type vcenterHooks struct {
	mu        sync.Mutex
	snapshots []snapshotCall
	powerOns  int
}

func installHooks(t *testing.T, p *Provider) *vcenterHooks {
	t.Helper()
	h := &vcenterHooks{}
	reg := p.simModel().Map()
	reg.Handler = func(ctx *simulator.Context, m *simulator.Method) (mo.Reference, types.BaseMethodFault) {
		switch body := m.Body.(type) {
		case *types.CreateSnapshot_Task:
			h.mu.Lock()
			h.snapshots = append(h.snapshots, snapshotCall{body.Name, body.Memory, body.Quiesce})
			h.mu.Unlock()
		case *types.PowerOnVM_Task:
			h.mu.Lock()
			h.powerOns++
			h.mu.Unlock()
		case *types.RevertToSnapshot_Task:
			if snap, ok := ctx.Map.Get(m.This).(*simulator.VirtualMachineSnapshot); ok {
				powerOffForRevert(ctx, snap)
			}
		}
		return nil, nil
	}
	t.Cleanup(func() { reg.Handler = nil })
	return h
}

func (h *vcenterHooks) calls() ([]snapshotCall, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.snapshots), h.powerOns
}

// powerOffForRevert powers snap's VM off when snap was taken without
// memory, before the revert runs. (A handler object returned to the
// simulator would be replaced by the session's view of the snapshot, so
// the hook acts here.)
func powerOffForRevert(ctx *simulator.Context, snap *simulator.VirtualMachineSnapshot) {
	vm := ctx.Map.Get(snap.Vm).(*simulator.VirtualMachine)
	ctx.WithLock(vm, func() {
		if tree := findTree(vm.Snapshot.RootSnapshotList, snap.Self); tree != nil &&
			tree.State == types.VirtualMachinePowerStatePoweredOff {
			off := types.VirtualMachinePowerStatePoweredOff
			ctx.Update(vm, []types.PropertyChange{
				{Name: "runtime.powerState", Val: off}, {Name: "summary.runtime.powerState", Val: off},
			})
		}
	})
}

func findTree(list []types.VirtualMachineSnapshotTree, ref types.ManagedObjectReference) *types.VirtualMachineSnapshotTree {
	for i := range list {
		if list[i].Snapshot == ref {
			return &list[i]
		}
		if t := findTree(list[i].ChildSnapshotList, ref); t != nil {
			return t
		}
	}
	return nil
}

// Snapshots are taken with memory and quiesced unless the pool says
// otherwise, and a revert leaves a running VM running, also when the
// snapshot has no memory (vCenter then powers the VM off).
func TestSnapshotMemoryAndRevertPower(t *testing.T) {
	p, loc := cloneOnSim(t, "keep")
	ctx := ctxT(t)
	h := installHooks(t, p)

	if err := p.Snapshot(ctx, loc, "with-memory", true); err != nil {
		t.Fatalf("Snapshot with memory: %v", err)
	}
	if err := p.Snapshot(ctx, loc, "disk-only", false); err != nil {
		t.Fatalf("Snapshot without memory: %v", err)
	}
	snaps, _ := h.calls()
	want := []snapshotCall{{"with-memory", true, true}, {"disk-only", false, true}}
	if !slices.Equal(snaps, want) {
		t.Errorf("CreateSnapshot_Task calls %+v, want %+v", snaps, want)
	}

	// revert reverts to snap and checks the power state after it and the
	// number of PowerOnVM_Task calls so far.
	revert := func(snap string, want types.VirtualMachinePowerState, powerOns int, why string) {
		t.Helper()
		if err := p.Revert(ctx, loc, snap); err != nil {
			t.Fatalf("Revert to %s, %s: %v", snap, why, err)
		}
		if got := powerState(t, p, loc); got != want {
			t.Errorf("after a revert to %s, %s: %s, want %s", snap, why, got, want)
		}
		if _, n := h.calls(); n != powerOns {
			t.Errorf("after a revert to %s, %s: PowerOnVM_Task calls = %d, want %d", snap, why, n, powerOns)
		}
	}
	on, off := types.VirtualMachinePowerStatePoweredOn, types.VirtualMachinePowerStatePoweredOff
	revert("disk-only", on, 1, "a snapshot without memory (the revert powered the VM off)")
	revert("with-memory", on, 1, "a snapshot with memory (it keeps the VM on)")

	// A VM that was off is left off.
	vm := mustVM(t, p, loc)
	if task, err := vm.PowerOff(ctx); err != nil || task.Wait(ctx) != nil {
		t.Fatalf("power off: %v", err)
	}
	revert("disk-only", off, 1, "a VM that was off")
}

// E3 of the real-lab review: with vsphere_timeout (2 s) shorter than the
// tasks (3 s), a snapshot, a disk add and a revert each wait for their task
// and succeed once (before, the snapshot failed and the disk add, retried,
// attached extra disks). The review used 1 s and 2 s; a round trip of the
// simulator under -race on a busy 2-core box can take more than 1 s.
func TestSlowTasksOutlastCallTimeout(t *testing.T) {
	p, loc := cloneOnSim(t, "slow", func(c *Config) { c.Timeout = 2 })
	ctx := ctxT(t)
	before := len(vmDisks(t, p, loc))
	setTaskDelay(t, map[string]int{"CreateSnapshotEx": 3000, "ReconfigVm": 3000, "RevertToSnapshot": 3000})

	start := time.Now()
	if err := p.Snapshot(ctx, loc, "slow-snap", true); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if d := time.Since(start); d < 3*time.Second {
		t.Fatalf("Snapshot returned after %v: the task delay did not apply", d)
	}
	if got := vmSnapshots(t, p, loc); !slices.Equal(got, []string{"slow-snap"}) {
		t.Errorf("snapshots %v, want [slow-snap]", got)
	}
	if err := p.AddDisk(ctx, loc, 1, "1-1"); err != nil {
		t.Fatalf("AddDisk: %v", err)
	}
	if got := len(vmDisks(t, p, loc)); got != before+1 {
		t.Errorf("disks %d → %d, want exactly one more", before, got)
	}
	if err := p.Revert(ctx, loc, "slow-snap"); err != nil {
		t.Fatalf("Revert: %v", err)
	}
}

// A job attempt cut short by its deadline leaves its task running in
// vCenter; the next attempt waits for that task and sees its outcome: one
// snapshot of the name, one disk of the id, and a VM running after a revert
// to a snapshot without memory. (Attempts are cut after 1 s, tasks take
// 2.5 s: the first attempt's call has time to reach the simulator even on
// a busy box, so its task exists when the second attempt looks.)
func TestJobCutShortFindsOut(t *testing.T) {
	p, loc := cloneOnSim(t, "cut")
	ctx := ctxT(t)
	h := installHooks(t, p)
	before := len(vmDisks(t, p, loc))
	setTaskDelay(t, map[string]int{"CreateSnapshotEx": 2500, "ReconfigVm": 2500, "RevertToSnapshot": 2500})
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(ctxT(t), time.Second)
		t.Cleanup(cancel)
		return ctx
	}

	if err := p.Snapshot(short(), loc, "cut-snap", false); !errors.Is(err, pool.ErrTransient) {
		t.Fatalf("Snapshot cut short: %v, want ErrTransient", err)
	}
	if err := p.Snapshot(ctx, loc, "cut-snap", false); err != nil {
		t.Fatalf("Snapshot again: %v", err)
	}
	if got := vmSnapshots(t, p, loc); !slices.Equal(got, []string{"cut-snap"}) {
		t.Errorf("snapshots %v, want one cut-snap", got)
	}
	if snaps, _ := h.calls(); len(snaps) != 1 {
		t.Errorf("CreateSnapshot_Task sent %d times, want once", len(snaps))
	}

	if err := p.AddDisk(short(), loc, 1, "3-1"); !errors.Is(err, pool.ErrTransient) {
		t.Fatalf("AddDisk cut short: %v, want ErrTransient", err)
	}
	if err := p.AddDisk(ctx, loc, 1, "3-1"); err != nil {
		t.Fatalf("AddDisk again: %v", err)
	}
	if got := len(vmDisks(t, p, loc)); got != before+1 {
		t.Errorf("disks %d → %d, want exactly one more", before, got)
	}

	if err := p.Revert(short(), loc, "cut-snap"); !errors.Is(err, pool.ErrTransient) {
		t.Fatalf("Revert cut short: %v, want ErrTransient", err)
	}
	if err := p.Revert(ctx, loc, "cut-snap"); err != nil {
		t.Fatalf("Revert again: %v", err)
	}
	if got := powerState(t, p, loc); got != types.VirtualMachinePowerStatePoweredOn {
		t.Errorf("after the revert, attempted twice: %s, want poweredOn", got)
	}
}

// A snapshot whose wait is cut short by a shutdown is not done: the
// manager leaves its job queued and the next start finds the snapshot.
// (Before, govmomi's answer to a cancelled wait, no error, made it done
// while its task was still running, or about to fail.)
func TestJobCutShortByShutdownIsNotDone(t *testing.T) {
	p, loc := cloneOnSim(t, "stop")
	setTaskDelay(t, map[string]int{"CreateSnapshotEx": 2000})
	ctx, stop := context.WithCancelCause(ctxT(t))
	time.AfterFunc(300*time.Millisecond, func() { stop(pool.ErrShutdown) })
	if err := p.Snapshot(ctx, loc, "cut-snap", false); err == nil {
		t.Error("a snapshot cut short by a shutdown returned no error")
	}
	// Its task goes on, and the next attempt would find the snapshot.
	// (Waiting for it also orders the simulator's read of its task delay
	// before the test puts the delay back.)
	for deadline := time.Now().Add(30 * time.Second); !slices.Contains(vmSnapshots(t, p, loc), "cut-snap"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the snapshot task left to finish never made its snapshot")
		}
	}
}
