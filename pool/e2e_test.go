package pool_test

import (
	"context"
	"log/slog"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
	"github.com/vmpooler/vmpooler/vsphere"
)

// TestManagerOnSimulator runs the manager against the vsphere provider on
// the in-process vCenter simulator: the pool fills, a VM is checked out,
// its lifetime expires when the clock jumps a day, it is destroyed in
// vSphere, and the pool refills. Simulated guests boot after a real 50 ms,
// so convergence is awaited by repeating passes, bounded by a deadline.
func TestManagerOnSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a vCenter simulator")
	}
	logger := slog.New(slog.DiscardHandler)
	if os.Getenv("VMPOOLER_TEST_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg := &pool.Config{Pools: []pool.PoolConfig{{
		Name: "centos-7", Template: "templates/centos-7", Folder: "pools/centos-7",
		Size: 2, ReadyCheck: "tools",
	}}}
	cfg.Defaults()
	pc := cfg.Pools[0]

	prov := vsphere.New(vsphere.Config{Simulator: true, Datacenter: "dc1", BootDelay: 0.05}, cfg.Pools, logger)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := prov.Open(ctx); err != nil {
		t.Fatalf("vsphere Open: %v", err)
	}
	defer prov.Close()

	clk := clocktest.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	st := storetest.MustOpen(t, storetest.Now(clk.Now))
	m := pool.NewManager(cfg, st, prov, logger)
	m.Now = clk.Now
	defer m.Close()

	counts := func() store.PoolCounts { return st.Counts()[pc.Name] }
	converge := func(what string, done func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if err := m.Reconcile(ctx); err != nil {
				t.Fatalf("Reconcile: %v", err)
			}
			m.Wait()
			if done() {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("%s: not reached; counts %+v", what, counts())
			}
			<-tick.C // the simulated guests boot in real time
		}
	}
	inventory := func() []string {
		infos, err := prov.List(ctx, pc.Datacenter, pc.Folder)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, vm := range infos {
			names = append(names, vm.Name)
		}
		slices.Sort(names)
		return names
	}

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
