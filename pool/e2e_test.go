package pool_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

// TestManagerOnSimulator runs the manager against the vsphere provider on
// the in-process vCenter simulator: the pool fills, a VM is checked out,
// its lifetime expires when the clock jumps a day, it is destroyed in
// vSphere, and the pool refills. Simulated guests boot after a real 50 ms,
// so convergence is awaited by repeating passes, bounded by a deadline.
func TestManagerOnSimulator(t *testing.T) {
	pc := pool.PoolConfig{Name: "centos-7", Template: "templates/centos-7", Folder: "pools/centos-7",
		Size: 2, ReadyCheck: "tools"}
	lab := newSimLab(t, []pool.PoolConfig{pc})
	m, st := lab.manager(filepath.Join(t.TempDir(), "vmpooler.db"), []pool.PoolConfig{pc})
	clk := lab.clk
	counts := func() store.PoolCounts { return st.Counts()[pc.Name] }
	converge := func(what string, done func() bool) { t.Helper(); lab.converge(m, st, what, done) }
	inventory := func() []string { return lab.names(pc.Folder) }

	converge("pool filled", func() bool { return counts().Ready == 2 })
	vms, err := st.Checkout(store.CheckoutRequest{Pools: []store.PoolCount{{Pool: pc.Name, Count: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	host := vms[0].Hostname
	converge("refilled after checkout", func() bool { return counts().Ready == 2 && counts().Running == 1 })
	if !slices.Contains(inventory(), host) {
		t.Fatalf("checked-out %s not in vSphere", host)
	}

	clk.Advance(24 * time.Hour)
	converge("lifetime expired", func() bool { return counts().Running == 0 })
	vm, err := st.Get(host)
	if err != nil {
		t.Fatal(err)
	}
	if vm.State != store.StateDestroyed || vm.Reason != "lifetime of 24h expired" {
		t.Fatalf("expired vm = %s %q", vm.State, vm.Reason)
	}
	if slices.Contains(inventory(), host) {
		t.Fatalf("expired %s still in vSphere", host)
	}
	converge("refilled", func() bool { c := counts(); return c.Ready == 2 && c.Pending == 0 && c.Completed == 0 })

	// Store and inventory agree: nothing leaked, nothing lost.
	live, err := st.ListPool(pc.Name)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, vm := range live {
		names = append(names, vm.Hostname)
	}
	slices.Sort(names)
	if got := inventory(); !slices.Equal(got, names) {
		t.Fatalf("vSphere has %v, store has %v", got, names)
	}
}
