package vsphere

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmpooler/vmpooler/pool"
)

// hookedTemplate replaces a template's CloneVM_Task with a task running fn
// (vcsim's fault rules only fail the call, not the task).
type hookedTemplate struct {
	*simulator.VirtualMachine
	fn func(*simulator.Task) (types.AnyType, types.BaseMethodFault)
}

func (v *hookedTemplate) CloneVMTask(ctx *simulator.Context, _ *types.CloneVM_Task) soap.HasFault {
	t := simulator.CreateTask(v, "cloneVm", v.fn)
	return &methods.CloneVM_TaskBody{Res: &types.CloneVM_TaskResponse{Returnval: t.Run(ctx)}}
}

// hookTemplate installs fn as pc's template's clone task.
func hookTemplate(t *testing.T, p *Provider, pc pool.PoolConfig, fn func(*simulator.Task) (types.AnyType, types.BaseMethodFault)) {
	t.Helper()
	ref, err := findPath(ctxT(t), p.vc(), "template", "dc1/vm/"+pc.Template)
	if err != nil {
		t.Fatal(err)
	}
	reg := p.simModel().Map()
	reg.Put(&hookedTemplate{VirtualMachine: reg.Get(ref.Reference()).(*simulator.VirtualMachine), fn: fn})
}

func TestFaultCloneTaskFails(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	hookTemplate(t, p, pc, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, &types.InsufficientResourcesFault{}
	})
	err := p.Clone(ctxT(t), specFor(pc, "nope"))
	if !errors.Is(err, pool.ErrTransient) {
		t.Errorf("clone task failure: %v, want ErrTransient", err)
	}
	t.Logf("error: %v", err)
}

func TestFaultCloneCallFails(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	p.simModel().Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: "CloneVM_Task", ObjectType: "VirtualMachine", ObjectName: "*",
		Probability: 1, MaxCount: 1, Enabled: true,
		FaultType: simulator.FaultTypeCustom, Fault: &types.DuplicateName{Name: "x"},
	})
	if err := p.Clone(ctxT(t), specFor(pc, "a")); !errors.Is(err, pool.ErrExists) {
		t.Errorf("injected DuplicateName: %v, want ErrExists", err)
	}
	mustClone(t, p, pc, "a") // MaxCount 1: the next one works
}

func TestFaultCloneSlowerThanDeadline(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	release := make(chan struct{})
	defer close(release)
	hookTemplate(t, p, pc, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		<-release
		return nil, &types.RequestCanceled{}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err := p.Clone(ctx, specFor(pc, "slow"))
	if !errors.Is(err, pool.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow clone: %v, want ErrTransient and DeadlineExceeded", err)
	}
}

// slowSearchIndex blocks FindByInventoryPath until release is closed.
// (A FaultInjectionRule with a Delay would do, but vcsim's fault injector
// races with concurrent requests under -race.)
type slowSearchIndex struct {
	*simulator.SearchIndex
	release chan struct{}
}

func (s *slowSearchIndex) FindByInventoryPath(ctx *simulator.Context, req *types.FindByInventoryPath) soap.HasFault {
	<-s.release
	return s.SearchIndex.FindByInventoryPath(ctx, req)
}

func TestFaultCallTimeout(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	p.rt.timeout = 100 * time.Millisecond // vsphere_timeout, per call
	reg := p.simModel().Map()
	orig := reg.SearchIndex()
	slow := &slowSearchIndex{SearchIndex: orig, release: make(chan struct{})}
	reg.Put(slow)
	defer func() { close(slow.release); reg.Put(orig) }()
	_, err := p.List(ctxT(t), pc.Datacenter, pc.Folder)
	if !errors.Is(err, pool.ErrTransient) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow call: %v, want ErrTransient and DeadlineExceeded", err)
	}
}

// terminate ends p's session from a second, admin client, as an expired
// session would look to p.
func terminate(t *testing.T, p *Provider) {
	t.Helper()
	ctx := ctxT(t)
	us, err := session.NewManager(p.vc()).UserSession(ctx)
	if err != nil || us == nil {
		t.Fatalf("UserSession: %v %v", us, err)
	}
	admin, err := govmomi.NewClient(ctx, p.sim.URL(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Logout(ctx)
	if err := session.NewManager(admin.Client).TerminateSession(ctx, []string{us.Key}); err != nil {
		t.Fatalf("TerminateSession: %v", err)
	}
}

func TestFaultSessionExpiryRelogin(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	mustClone(t, p, pc, "before")
	terminate(t, p)
	vms, err := p.List(ctxT(t), pc.Datacenter, pc.Folder)
	if err != nil || len(vms) != 1 {
		t.Fatalf("List after expiry: %v, %v", vms, err)
	}
	if n := p.rt.logins.Load(); n != 1 {
		t.Errorf("re-logins = %d, want 1", n)
	}
	mustClone(t, p, pc, "after") // the new session keeps working
}

func TestFaultSessionExpiryBadCredentials(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	terminate(t, p)
	p.simModel().Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: "Login", ObjectType: "*", ObjectName: "*", Probability: 1, Enabled: true,
		FaultType: simulator.FaultTypeCustom, Fault: &types.InvalidLogin{},
	})
	_, err := p.List(ctxT(t), pc.Datacenter, pc.Folder)
	if !errors.Is(err, pool.ErrAuth) {
		t.Errorf("List with a failing re-login: %v, want ErrAuth", err)
	}
}

func TestFaultBadCredentialsAtOpen(t *testing.T) {
	u := serveForTest(t, testPools())
	p := New(Config{Server: u, Username: "user", Password: "wrong", Insecure: true}, testPools(), simtest.Logger())
	if err := p.Open(ctxT(t)); !errors.Is(err, pool.ErrAuth) {
		t.Errorf("Open with a wrong password: %v, want ErrAuth", err)
	}
	p = New(Config{Server: "127.0.0.1:1", Username: "user", Password: "x", Insecure: true, Timeout: 5}, nil, nil)
	if err := p.Open(ctxT(t)); !errors.Is(err, pool.ErrTransient) {
		t.Errorf("Open on a closed port: %v, want ErrTransient", err)
	}
}

func TestFaultVMDeletedBehindOurBack(t *testing.T) {
	p, loc := cloneOnSim(t, "victim")
	ctx := ctxT(t)
	vm := mustVM(t, p, loc) // looked up before it vanishes
	admin, err := govmomi.NewClient(ctx, p.sim.URL(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Logout(ctx)
	other := object.NewVirtualMachine(admin.Client, vm.Reference())
	if task, err := other.PowerOff(ctx); err != nil || task.Wait(ctx) != nil {
		t.Fatalf("power off: %v", err)
	}
	if task, err := other.Destroy(ctx); err != nil || task.Wait(ctx) != nil {
		t.Fatalf("destroy: %v", err)
	}
	for name, err := range map[string]error{
		"Destroy":  p.Destroy(ctx, loc),
		"Snapshot": p.Snapshot(ctx, loc, "s", true),
		"Revert":   p.Revert(ctx, loc, "s"),
		"AddDisk":  p.AddDisk(ctx, loc, 1, "j1"),
		"Annotate": p.Annotate(ctx, loc, map[string]string{"a": "b"}),
	} {
		if !errors.Is(err, pool.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	// A stale reference (found, then deleted) is ErrNotFound too.
	_, err = vm.PowerState(ctx)
	if err = wrapErr("power state", err); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("stale MOID: %v, want ErrNotFound", err)
	}
}

func TestFaultPowerState(t *testing.T) {
	p, loc := cloneOnSim(t, "off")
	ctx := ctxT(t)
	vm := mustVM(t, p, loc)
	task, err := vm.PowerOn(ctx) // already on: a task error
	if err == nil {
		err = task.Wait(ctx)
	}
	if err = wrapErr("power on", err); !errors.Is(err, pool.ErrPowerState) {
		t.Errorf("power on twice: %v, want ErrPowerState", err)
	}
}

func TestClassifyPlainErrors(t *testing.T) {
	for _, c := range []struct {
		err  error
		want error
	}{
		{context.DeadlineExceeded, pool.ErrTransient},
		{errors.New("boom"), nil},
		{notFound("VM", "x"), nil}, // already classified: kept as is
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
	if err := wrapErr("op", notFound("VM", "x")); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("wrapErr lost the class: %v", err)
	}
}

// E1: vCenter answers with subclasses of the capacity faults; each is the
// capacity class (and so retried with backoff), never an unclassified or
// an authentication error. NoPermission names the missing privilege.
func TestFaultClassesBySubclass(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	var mu sync.Mutex
	var next types.BaseMethodFault // the fault the clone task ends with (mu)
	hookTemplate(t, p, pc, func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		mu.Lock()
		defer mu.Unlock()
		return nil, next
	})
	set := func(f types.BaseMethodFault) { mu.Lock(); next = f; mu.Unlock() }
	for _, f := range []types.BaseMethodFault{
		&types.InsufficientResourcesFault{},
		&types.InsufficientStorageSpace{},
		&types.InsufficientMemoryResourcesFault{},
		&types.InsufficientHostMemoryCapacityFault{},
		&types.InsufficientFailoverResourcesFault{},
		&types.NoDiskSpace{},
	} {
		set(f)
		err := p.Clone(ctxT(t), specFor(pc, "nope"))
		if !errors.Is(err, pool.ErrCapacity) || !errors.Is(err, pool.ErrTransient) {
			t.Errorf("clone task failing with %T: %v, want ErrCapacity and ErrTransient", f, err)
		}
	}
	np := &types.NoPermission{PrivilegeId: "VirtualMachine.Provisioning.Clone",
		Object: &types.ManagedObjectReference{Type: "VirtualMachine", Value: "vm-42"}}
	set(np)
	err := p.Clone(ctxT(t), specFor(pc, "nope"))
	if !errors.Is(err, pool.ErrPermission) || errors.Is(err, pool.ErrAuth) ||
		!strings.Contains(err.Error(), "VirtualMachine.Provisioning.Clone on VirtualMachine:vm-42") {
		t.Errorf("NoPermission: %v, want ErrPermission naming the privilege and object, not ErrAuth", err)
	}
}

// vCenter hides objects a user may not read, so "not found" says so.
func TestFaultNotFoundMayBeInvisible(t *testing.T) {
	u := serveForTest(t, testPools())
	p := New(Config{Server: u, Username: "user", Password: "pass", Insecure: true}, testPools(), simtest.Logger())
	if err := p.Open(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	_, err := p.List(ctxT(t), "dc1", "no/such/folder")
	if !errors.Is(err, pool.ErrNotFound) || !strings.Contains(err.Error(), "not found, or not visible to user") {
		t.Errorf("List of a missing folder: %v, want ErrNotFound saying it may be invisible to user", err)
	}
}

// After a vCenter restart the custom field keys the provider cached may be
// stale; an annotation with a stale key looks the field up again instead
// of failing on every pass.
func TestAnnotateStaleFieldKey(t *testing.T) {
	p, loc := cloneOnSim(t, "noted")
	ctx := ctxT(t)
	p.fieldsMu.Lock()
	p.fields[9999] = "vmpooler_user" // what a restarted vCenter no longer knows
	p.fieldsMu.Unlock()
	if err := p.Annotate(ctx, loc, map[string]string{"vmpooler_user": "jdoe"}); err != nil {
		t.Fatalf("Annotate with a stale key: %v", err)
	}
	vms, err := p.List(ctx, loc.Datacenter, loc.Folder)
	if err != nil || len(vms) != 1 || vms[0].Attributes["vmpooler_user"] != "jdoe" {
		t.Fatalf("List: %+v, %v; want the attribute", vms, err)
	}
}
