package vsphere

import (
	"strings"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// strictLinkedVM is a template that, like vCenter and unlike vcsim (E2),
// refuses a linked clone (createNewChildDiskBacking) without a snapshot.
type strictLinkedVM struct {
	*simulator.VirtualMachine
}

func (v *strictLinkedVM) CloneVMTask(ctx *simulator.Context, req *types.CloneVM_Task) soap.HasFault {
	if req.Spec.Location.DiskMoveType == string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking) && req.Spec.Snapshot == nil {
		return &methods.CloneVM_TaskBody{Fault_: simulator.Fault("createNewChildDiskBacking needs spec.snapshot",
			&types.InvalidArgument{InvalidProperty: "spec.snapshot"})}
	}
	return v.VirtualMachine.CloneVMTask(ctx, req)
}

// A pool asking for linked clones whose template has no snapshot gets full
// clones (never a linked clone without a snapshot), a log line once and a
// note for /status; after a snapshot is taken, clones are linked again and
// the note goes.
func TestLinkedCloneWithoutSnapshot(t *testing.T) {
	pools := testPools()
	pc := pools[1]
	p := MustOpenSim(t, pools)
	ctx := ctxT(t)
	ref, err := findPath(ctx, p.vc(), "template", "dc1/vm/"+pc.Template)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := ref.(*object.VirtualMachine)
	task, err := tmpl.RemoveAllSnapshot(ctx, nil)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatalf("remove the template's snapshots: %v", err)
	}
	reg := p.simModel().Map()
	sim := reg.Get(tmpl.Reference()).(*simulator.VirtualMachine)
	reg.Put(&strictLinkedVM{VirtualMachine: sim})

	// The override does refuse what the simulator would accept.
	folder, err := p.folder(ctx, p.vc(), "dc1", pc.Folder, false)
	if err != nil {
		t.Fatal(err)
	}
	bad := types.VirtualMachineCloneSpec{Location: types.VirtualMachineRelocateSpec{
		DiskMoveType: string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)}}
	if task, err := tmpl.Clone(ctx, folder, "bad", bad); err == nil {
		if err = task.Wait(ctx); err == nil {
			t.Fatal("the override accepted a linked clone without a snapshot")
		}
	}

	for _, name := range []string{"full1", "full2"} {
		mustClone(t, p, pc, name) // LinkedClone: true
	}
	notes := p.Notes()[pc.Name]
	if len(notes) != 1 || !strings.Contains(notes[0], "making full clones") || !strings.Contains(notes[0], pc.Template) {
		t.Fatalf("notes = %q, want one saying full clones of %s", notes, pc.Template)
	}
	var np pool.NoteProvider = p
	if len(np.Notes()) != 1 {
		t.Errorf("notes for %d pools, want 1", len(np.Notes()))
	}

	reg.Put(sim) // vcsim's snapshot code wants its own type
	task, err = tmpl.CreateSnapshot(ctx, "base", "", false, false)
	if err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	reg.Put(&strictLinkedVM{VirtualMachine: sim})
	mustClone(t, p, pc, "linked1")
	if notes := p.Notes()[pc.Name]; len(notes) != 0 {
		t.Errorf("notes after a snapshot = %q, want none", notes)
	}
}
