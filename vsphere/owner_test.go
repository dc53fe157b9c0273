package vsphere

import (
	"errors"
	"testing"

	"github.com/vmpooler/vmpooler/pool"
)

// Clones carry the marker; List reads it (by indexed property, and by the
// whole extraConfig after a vCenter refused indexed paths); Destroy
// refuses what the location does not own, and templates.
func TestOwnershipMarker(t *testing.T) {
	pools := testPools()
	pc := pools[1]
	p := MustOpenSim(t, pools)
	ctx := ctxT(t)
	spec := specFor(pc, "marked")
	spec.Instance = "abcdefghijklmnop"
	if err := p.Clone(ctx, spec); err != nil {
		t.Fatal(err)
	}
	mustClone(t, p, pc, "unmarked") // no instance: no marker
	for _, whole := range []bool{false, true} {
		p.wholeExtraConfig.Store(whole)
		vms, err := p.List(ctx, pc.Datacenter, pc.Folder)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]pool.Owner{}
		for _, vm := range vms {
			got[vm.Name] = vm.Owner
		}
		if want := (pool.Owner{Instance: spec.Instance, Pool: pc.Name}); got["marked"] != want {
			t.Errorf("whole=%v: marked owner = %+v, want %+v", whole, got["marked"], want)
		}
		if o, ok := got["unmarked"]; !ok || o != (pool.Owner{}) {
			t.Errorf("whole=%v: unmarked owner = %+v (listed %v), want none", whole, o, ok)
		}
	}
	p.wholeExtraConfig.Store(false)

	other := locFor(pc, "marked")
	other.Owners, other.Known = []string{"zzzzzzzzzzzzzzzz"}, true
	if err := p.Destroy(ctx, other); !errors.Is(err, pool.ErrForeign) {
		t.Errorf("Destroy with another instance's marker: %v, want ErrForeign", err)
	}
	unknown := locFor(pc, "unmarked")
	unknown.Owners, unknown.Known = []string{spec.Instance}, false
	if err := p.Destroy(ctx, unknown); !errors.Is(err, pool.ErrForeign) {
		t.Errorf("Destroy of an unmarked VM the store does not know: %v, want ErrForeign", err)
	}
	tmpl := pool.Location{Pool: pc.Name, Name: "debian-12", Folder: "templates/linux", Datacenter: "dc1", Known: true}
	if err := p.Destroy(ctx, tmpl); !errors.Is(err, pool.ErrForeign) {
		t.Errorf("Destroy of a template: %v, want ErrForeign", err)
	}
	vms, _ := p.List(ctx, pc.Datacenter, pc.Folder)
	if len(vms) != 2 {
		t.Fatalf("after refused destroys the folder holds %d VMs, want 2", len(vms))
	}
	mine := locFor(pc, "marked")
	mine.Owners = []string{"zzzzzzzzzzzzzzzz", spec.Instance}
	if err := p.Destroy(ctx, mine); err != nil {
		t.Errorf("Destroy of an owned VM: %v", err)
	}
	known := locFor(pc, "unmarked") // Known: a record from before markers existed
	if err := p.Destroy(ctx, known); err != nil {
		t.Errorf("Destroy of a known unmarked VM: %v", err)
	}
}
