package pool_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/internal/testenv"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
	"github.com/vmpooler/vmpooler/vsphere"
)

// simLab is the vsphere provider on the in-process simulator, with helpers
// to run managers (each on its own database) against it.
type simLab struct {
	t    *testing.T
	ctx  context.Context
	prov *vsphere.Provider
	clk  *clocktest.Clock
}

func newSimLab(t *testing.T, pools []pool.PoolConfig) *simLab {
	t.Helper()
	testenv.SkipIfShort(t, "starts a vCenter simulator")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	prov := simtest.Open(t, vsphere.New(vsphere.Config{Simulator: true, Datacenter: "dc1", BootDelay: 0.05}, pools, simtest.Logger()))
	return &simLab{t: t, ctx: ctx, prov: prov, clk: clocktest.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))}
}

// manager opens (or reopens) the database at path and runs a manager on it.
func (l *simLab) manager(path string, pools []pool.PoolConfig) (*pool.Manager, *store.Store) {
	l.t.Helper()
	st := storetest.MustOpen(l.t, storetest.Path(path), storetest.Now(l.clk.Now))
	cfg := &pool.Config{Pools: slices.Clone(pools)}
	cfg.Defaults()
	m := pool.NewManager(cfg, st, l.prov, simtest.Logger())
	m.Now = l.clk.Now
	l.t.Cleanup(func() { m.Close() })
	return m, st
}

// pass runs one reconcile pass and waits for what it started.
func (l *simLab) pass(m *pool.Manager) {
	l.t.Helper()
	if err := m.Reconcile(l.ctx); err != nil {
		l.t.Fatalf("Reconcile: %v", err)
	}
	m.Wait()
}

// converge repeats passes until done, at least one (the simulated guests
// boot in real time); it fails showing st's counts after 30 s.
func (l *simLab) converge(m *pool.Manager, st *store.Store, what string, done func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l.pass(m)
		if done() {
			return
		} else if time.Now().After(deadline) {
			l.t.Fatalf("%s: not reached; counts %+v", what, st.Counts())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// names lists a folder's VMs.
func (l *simLab) names(folder string) []string {
	l.t.Helper()
	infos, err := l.prov.List(l.ctx, "dc1", folder)
	if err != nil {
		l.t.Fatal(err)
	}
	var out []string
	for _, vm := range infos {
		out = append(out, vm.Name)
	}
	slices.Sort(out)
	return out
}

// E6: a pool whose folder is the datacenter's root VM folder, size 0, one
// pass. Before ownership markers the simulator's own VMs (DC0_H0_VM0,
// DC0_C0_RP0_VM0, ...) were destroyed as orphans; the config now refuses
// such a folder, and even a manager handed one destroys nothing unmarked.
func TestE6RootFolderPoolDestroysNothing(t *testing.T) {
	pc := pool.PoolConfig{Name: "centos-7", Template: "templates/centos-7", Folder: "", Size: 0, Datacenter: "dc1"}
	if err := pool.CheckFolder(pc); err == nil {
		t.Error("CheckFolder accepts the root VM folder")
	}
	lab := newSimLab(t, []pool.PoolConfig{pc})
	before := lab.names("")
	if len(before) == 0 {
		t.Fatal("the simulator's root VM folder is empty; the test proves nothing")
	}
	m, _ := lab.manager(filepath.Join(t.TempDir(), "vmpooler.db"), []pool.PoolConfig{pc})
	lab.pass(m)
	if after := lab.names(""); !slices.Equal(after, before) {
		t.Fatalf("root VM folder after one pass = %v, want %v untouched", after, before)
	}
	if got := len(m.Health()[pc.Name].Foreign); got != len(before) {
		t.Errorf("foreign = %d, want %d", got, len(before))
	}
}

// A VM made by hand in a pool folder (no marker) and a template converted
// to a VM for patching sit through ten passes and a restart, untouched;
// a second pooler with a fresh database on the same folders destroys
// nothing the first made, checked-out VMs included.
func TestForeignVMsAndSecondPoolerOnSimulator(t *testing.T) {
	pc := pool.PoolConfig{Name: "centos-7", Template: "templates/centos-7", Folder: "pools/centos-7",
		Size: 2, Datacenter: "dc1", ReadyCheck: "tools"}
	pools := []pool.PoolConfig{pc}
	lab := newSimLab(t, pools)
	// By hand, with the same client code but no instance: no marker.
	for _, name := range []string{"handmade", "centos-7"} {
		spec := pool.CloneSpec{Pool: pc.Name, Name: name, Template: pc.Template, Folder: pc.Folder, Datacenter: pc.Datacenter}
		if err := lab.prov.Clone(lab.ctx, spec); err != nil {
			t.Fatalf("hand clone %s: %v", name, err)
		}
	}
	foreign := []string{"centos-7", "handmade"}

	dbA := filepath.Join(t.TempDir(), "a.db")
	m, st := lab.manager(dbA, pools)
	lab.converge(m, st, "pool filled", func() bool { return st.Counts()[pc.Name].Ready == 2 })
	running, err := st.Checkout(store.CheckoutRequest{Pools: []store.PoolCount{{Pool: pc.Name, Count: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		lab.pass(m)
		lab.clk.Advance(time.Minute)
		if i == 4 { // restart on the same database
			m.Close()
			st.Close()
			m, st = lab.manager(dbA, pools)
		}
	}
	lab.converge(m, st, "refilled", func() bool { return st.Counts()[pc.Name].Ready == 2 })
	inv := lab.names(pc.Folder)
	for _, name := range foreign {
		if !slices.Contains(inv, name) {
			t.Errorf("foreign %s destroyed", name)
		}
	}
	if h := m.Health()[pc.Name]; len(h.Foreign) != 2 {
		t.Errorf("foreign in health = %v, want 2", h.Foreign)
	}
	first := lab.names(pc.Folder)
	m.Close()

	// A second pooler: fresh database, same folders.
	m2, st2 := lab.manager(filepath.Join(t.TempDir(), "b.db"), pools)
	lab.converge(m2, st2, "second pooler filled", func() bool { return st2.Counts()[pc.Name].Ready == 2 })
	for range 5 {
		lab.pass(m2)
		lab.clk.Advance(time.Minute)
	}
	inv = lab.names(pc.Folder)
	for _, name := range first {
		if !slices.Contains(inv, name) {
			t.Errorf("second pooler destroyed %s (the checked-out one: %v)", name, name == running[0].Hostname)
		}
	}
	if got, want := len(inv), len(first)+2; got != want {
		t.Errorf("folder holds %d VMs, want %d (first pooler's, its own 2)", got, want)
	}
}
