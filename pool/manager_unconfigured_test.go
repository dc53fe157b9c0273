package pool

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/store"
)

// A pool removed from the configuration while the pooler was stopped:
// without purge_unconfigured_resources its VMs are logged once and left;
// with it, the VMs carrying this pooler's marker in its remembered folder
// are destroyed (a running one's record too), and nothing else ever is:
// not a VM without a marker, not another instance's, not a VM in a
// configured pool's folder.
func TestManagerPurgeUnconfiguredResources(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("keep", 1), mgrTestPool("gone", 2))
	e.fillReady(t, "gone", 2)
	running := e.checkout(t, "gone")
	keep := e.states(t, "keep")[store.StateReady]
	e.fp.Add("DC0", "vmpooler/gone", VMInfo{Name: "handmade", PoweredOn: true})
	e.fp.Add("DC0", "vmpooler/gone", VMInfo{Name: "other", PoweredOn: true, Owner: Owner{Instance: "aaaaaaaaaaaaaaaa", Pool: "gone"}})
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	gone := slices.Sorted(slices.Values(e.fp.Names("vmpooler/gone")))
	if len(gone) != 4 {
		t.Fatalf("folder gone holds %v", gone)
	}

	// Restarted without pool "gone", purge off: logged once per VM, left.
	e = e.restart(t, e.st, nil, mgrTestPool("keep", 1))
	e.m.PurgeInterval = 0 // look every pass: still logged once
	for range 3 {
		e.pass(t)
		e.clk.Advance(time.Minute)
	}
	if got := slices.Sorted(slices.Values(e.fp.Names("vmpooler/gone"))); !slices.Equal(got, gone) {
		t.Errorf("purge off: folder holds %v, want %v", got, gone)
	}
	if n := strings.Count(e.log.String(), "vm="+running.Hostname); n != 1 {
		t.Errorf("purge off: %s logged %d times, want once:\n%s", running.Hostname, n, e.log)
	}
	if strings.Contains(e.log.String(), "vm=handmade") || strings.Contains(e.log.String(), "vm=other ") {
		t.Errorf("a VM without this pooler's marker was logged as ours:\n%s", e.log)
	}
	e.m.Close()

	// Purge on: our two VMs go, the others stay; the folder is then forgotten.
	e = e.restart(t, e.st, func(c *Config) { c.PurgeUnconfiguredResources = true }, mgrTestPool("keep", 1))
	e.pass(t)
	if got := slices.Sorted(slices.Values(e.fp.Names("vmpooler/gone"))); !slices.Equal(got, []string{"handmade", "other"}) {
		t.Errorf("purge on: folder holds %v, want handmade and other", got)
	}
	if got := e.fp.Names("vmpooler/keep"); !slices.Equal(got, keep) {
		t.Errorf("configured pool's folder holds %v, want %v", got, keep)
	}
	if vm := e.get(t, running.Hostname); vm.State != store.StateDestroyed {
		t.Errorf("purged running vm's record is %s, want destroyed", vm.State)
	}
	if r := e.fp.Refused(); len(r) != 0 {
		t.Errorf("tried to destroy VMs not ours: %v", r)
	}
	folders, err := e.st.PoolFolders()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := folders["gone"]; ok {
		t.Errorf("folder of gone still remembered: %v", folders)
	}
	if _, ok := folders["keep"]; !ok {
		t.Errorf("folder of keep not remembered: %v", folders)
	}
}
