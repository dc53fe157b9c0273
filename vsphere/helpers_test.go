package vsphere

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmpooler/vmpooler/pool"
)

// testPools is the pool layout most tests use.
func testPools() []pool.PoolConfig {
	return []pool.PoolConfig{
		{Name: "centos-7", Template: "templates/centos-7", Folder: "pools/centos-7",
			Datastore: "vmstore", CloneTarget: "cluster1", Datacenter: "dc1"},
		{Name: "debian-12", Template: "templates/linux/debian-12", Folder: "pools/debian-12",
			Datacenter: "dc1"},
	}
}

// MustOpenSim opens a Provider on a fresh in-process simulator.
func MustOpenSim(tb testing.TB, pools []pool.PoolConfig, mod ...func(*Config)) *Provider {
	tb.Helper()
	cfg := Config{Simulator: true, Datacenter: "dc1", BootDelay: 0.05}
	for _, f := range mod {
		f(&cfg)
	}
	return simtest.Open(tb, New(cfg, pools, simtest.Logger()))
}

func specFor(pc pool.PoolConfig, name string) pool.CloneSpec {
	return pool.CloneSpec{Pool: pc.Name, Name: name, Template: pc.Template, Folder: pc.Folder,
		Datastore: pc.Datastore, Datacenter: pc.Datacenter, CloneTarget: pc.CloneTarget, LinkedClone: true}
}

// locFor locates a VM the test made as one the store knows (Destroy's
// ownership check lets it through with or without a marker).
func locFor(pc pool.PoolConfig, name string) pool.Location {
	return pool.Location{Pool: pc.Name, Name: name, Folder: pc.Folder, Datacenter: pc.Datacenter, Known: true}
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// cloneOnSim opens a provider on a fresh simulator (MustOpenSim) with the
// testPools and clones name into the first; it returns the provider and
// the clone's location.
func cloneOnSim(tb testing.TB, name string, mod ...func(*Config)) (*Provider, pool.Location) {
	tb.Helper()
	pc := testPools()[0]
	p := MustOpenSim(tb, testPools(), mod...)
	mustClone(tb, p, pc, name)
	return p, locFor(pc, name)
}

// mustClone clones name into pool pc or fails the test.
func mustClone(tb testing.TB, p *Provider, pc pool.PoolConfig, name string) {
	tb.Helper()
	if err := p.Clone(ctxT(tb), specFor(pc, name)); err != nil {
		tb.Fatalf("Clone %s: %v", name, err)
	}
}

// waitReady polls List (bounded by a deadline, not a fixed sleep) until
// every name is listed, has an IP and passes check.
func waitReady(tb testing.TB, p *Provider, pc pool.PoolConfig, names []string, check string) map[string]pool.VMInfo {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		vms, err := p.List(ctxT(tb), pc.Datacenter, pc.Folder)
		if err != nil {
			tb.Fatalf("List: %v", err)
		}
		byName := map[string]pool.VMInfo{}
		for _, vm := range vms {
			byName[vm.Name] = vm
		}
		ready := 0
		var last string
		for _, n := range names {
			vm, ok := byName[n]
			if !ok {
				last = n + " not listed"
				continue
			}
			ok, reason, err := p.Ready(ctxT(tb), vm, check)
			if err != nil {
				tb.Fatalf("Ready: %v", err)
			}
			if ok && vm.IP != "" {
				ready++
			} else {
				last = n + ": " + reason
			}
		}
		if ready == len(names) {
			return byName
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d/%d ready after 30s; last: %s", ready, len(names), last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sim returns the provider's simulator (tests only).
func (p *Provider) simModel() *simulator.Model {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sim.model
}

// countingRT counts SOAP round trips below the re-login layer, and
// records their methods by the type of their body
// ("*methods.CancelTaskBody").
type countingRT struct {
	soap.RoundTripper
	n    atomic.Int64
	mu   sync.Mutex
	sent []string
}

func (c *countingRT) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	c.n.Add(1)
	c.mu.Lock()
	c.sent = append(c.sent, fmt.Sprintf("%T", req))
	c.mu.Unlock()
	return c.RoundTripper.RoundTrip(ctx, req, res)
}

// saw reports whether a round trip sent body (its type's name).
func (c *countingRT) saw(body string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Contains(c.sent, body)
}

// countCalls installs a countingRT on p.
func countCalls(p *Provider) *countingRT {
	c := &countingRT{RoundTripper: p.rt.inner}
	p.rt.inner = c
	return c
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%03d", prefix, i)
	}
	return out
}

// setTaskDelay delays the named simulator tasks (by task name:
// "CreateSnapshotEx", "ReconfigVm", "RevertToSnapshot") by ms milliseconds
// for the rest of the test. simulator.TaskDelay is a package global: tests
// that use it must not run in parallel with others. LockHandoff 0 lets
// property reads of the VM through while its task waits.
func setTaskDelay(t *testing.T, ms map[string]int) {
	t.Helper()
	old := simulator.TaskDelay
	delays := map[string]int{"LockHandoff": 0}
	maps.Copy(delays, ms)
	simulator.TaskDelay = simulator.DelayConfig{MethodDelay: delays}
	t.Cleanup(func() { simulator.TaskDelay = old })
}

// snapshotNames lists a snapshot tree depth first.
func snapshotNames(list []types.VirtualMachineSnapshotTree) []string {
	var out []string
	for _, t := range list {
		out = append(out, t.Name)
		out = append(out, snapshotNames(t.ChildSnapshotList)...)
	}
	return out
}

// mustVM looks up the VM at loc.
func mustVM(tb testing.TB, p *Provider, loc pool.Location) *object.VirtualMachine {
	tb.Helper()
	vm, err := p.vm(ctxT(tb), p.vc(), loc)
	if err != nil {
		tb.Fatal(err)
	}
	return vm
}

// vmProps reads the properties props of the VM at loc.
func vmProps(tb testing.TB, p *Provider, loc pool.Location, props ...string) mo.VirtualMachine {
	tb.Helper()
	vm := mustVM(tb, p, loc)
	var mvm mo.VirtualMachine
	if err := vm.Properties(ctxT(tb), vm.Reference(), props, &mvm); err != nil {
		tb.Fatal(err)
	}
	return mvm
}

// vmDisks returns the VM's disks.
func vmDisks(t *testing.T, p *Provider, loc pool.Location) []*types.VirtualDisk {
	t.Helper()
	devs, err := mustVM(t, p, loc).Device(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []*types.VirtualDisk
	for _, d := range devs.SelectByType((*types.VirtualDisk)(nil)) {
		out = append(out, d.(*types.VirtualDisk))
	}
	return out
}

func diskFileName(d *types.VirtualDisk) string {
	if b, ok := d.Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok {
		return b.FileName
	}
	return ""
}

func powerState(t *testing.T, p *Provider, loc pool.Location) types.VirtualMachinePowerState {
	t.Helper()
	state, err := mustVM(t, p, loc).PowerState(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	return state
}

func vmSnapshots(t *testing.T, p *Provider, loc pool.Location) []string {
	t.Helper()
	mvm := vmProps(t, p, loc, "snapshot")
	if mvm.Snapshot == nil {
		return nil
	}
	return snapshotNames(mvm.Snapshot.RootSnapshotList)
}
