package vsphere

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/internal/nettest"
	"github.com/vmpooler/vmpooler/internal/testenv"
	"github.com/vmpooler/vmpooler/pool"
)

func TestConfig(t *testing.T) {
	c := Config{Password: "s3cret"}.Defaults()
	if c.Timeout != 60 || !c.LinkedClones() || c.BootDelay != 1 || c.ReadyCheck != "ssh" {
		t.Errorf("defaults: %+v", c)
	}
	if s := (Config{Simulator: true}).Defaults(); s.ReadyCheck != "tools" || s.Username != "user" || s.Password != "pass" {
		t.Errorf("simulator defaults: %+v", s)
	}
	if r := c.Redacted(); r.Password != "********" || c.Password != "s3cret" {
		t.Errorf("Redacted: %q (original %q)", r.Password, c.Password)
	}
	if err := (Config{}).Validate(); err == nil {
		t.Error("Validate: want an error without server")
	}
	if err := (Config{Simulator: true, ReadyCheck: "tcp:x"}).Validate(); err == nil {
		t.Error("Validate: want an error for tcp:x")
	}
}

func TestSimulatorInventory(t *testing.T) {
	pools := testPools()
	p := MustOpenSim(t, pools)
	ctx := ctxT(t)
	for _, pc := range pools {
		vms, err := p.List(ctx, pc.Datacenter, pc.Folder)
		if err != nil || len(vms) != 0 {
			t.Errorf("List %s: %v, %v; want empty", pc.Folder, vms, err)
		}
		var mvm mo.VirtualMachine
		ref, err := findPath(ctx, p.vc(), "template", "dc1/vm/"+pc.Template)
		if err != nil {
			t.Fatalf("template %s: %v", pc.Template, err)
		}
		if err := ref.(*object.VirtualMachine).Properties(ctx, ref.Reference(), []string{"config.template"}, &mvm); err != nil || !mvm.Config.Template {
			t.Errorf("template %s not marked as template: %v", pc.Template, err)
		}
	}
	if _, err := p.List(ctx, "", "no/such/folder"); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("List missing folder: %v, want ErrNotFound", err)
	}
	if _, err := p.List(ctx, "", ""); err != nil { // default datacenter, root vm folder
		t.Errorf("List root: %v", err)
	}
}

// TestPoolFills clones a pool of 5 and waits until each is listed with an
// IP and passes the "tools" ready check.
func TestPoolFills(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	vmNames := names("fill", 5)
	var g errgroup.Group
	for _, n := range vmNames {
		g.Go(func() error { return p.Clone(ctxT(t), specFor(pc, n)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	got := waitReady(t, p, pc, vmNames, "tools")
	ips := map[string]bool{}
	for _, n := range vmNames {
		vm := got[n]
		if !vm.PoweredOn || !vm.ToolsRunning || vm.GuestHostname != n || ips[vm.IP] {
			t.Errorf("%s: %+v (hostname, unique IP, tools)", n, vm)
		}
		ips[vm.IP] = true
	}
}

func TestReadyChecks(t *testing.T) {
	p := New(Config{Simulator: true}, nil, nil)
	sshd := nettest.Accepting(t, func(c net.Conn) { c.Close() })
	var dialed []string
	var mu sync.Mutex
	p.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, addr)
		mu.Unlock()
		if strings.HasSuffix(addr, ":22") {
			return (&net.Dialer{}).DialContext(ctx, network, sshd.String())
		}
		return nil, errors.New("connection refused")
	}
	up := pool.VMInfo{Name: "a", PoweredOn: true, ToolsRunning: true, IP: "10.1.1.2"}
	cases := []struct {
		vm    pool.VMInfo
		check string
		want  bool
	}{
		{up, "none", true},
		{up, "tools", true},
		{up, "", true}, // simulator default: tools
		{up, "ssh", true},
		{up, "tcp:2222", false},
		{pool.VMInfo{PoweredOn: true}, "none", true},
		{pool.VMInfo{PoweredOn: true}, "tools", false},
		{pool.VMInfo{PoweredOn: true, ToolsRunning: true, IP: "169.254.3.4"}, "tools", false},
		{pool.VMInfo{ToolsRunning: true, IP: "10.0.0.1"}, "none", false},
	}
	for _, c := range cases {
		ok, reason, err := p.Ready(context.Background(), c.vm, c.check)
		if err != nil || ok != c.want || (!ok && reason == "") {
			t.Errorf("Ready(%+v, %q) = %v, %q, %v; want %v", c.vm, c.check, ok, reason, err, c.want)
		}
	}
	if _, _, err := p.Ready(context.Background(), up, "ping"); err == nil {
		t.Error("Ready with an unknown check: want an error")
	}
	if len(dialed) != 2 || dialed[0] != "10.1.1.2:22" || dialed[1] != "10.1.1.2:2222" {
		t.Errorf("dialed %v", dialed)
	}
}

func TestCloneErrors(t *testing.T) {
	pools := testPools()
	pc := pools[0]
	p := MustOpenSim(t, pools)
	ctx := ctxT(t)
	mustClone(t, p, pc, "dup")
	if err := p.Clone(ctx, specFor(pc, "dup")); !errors.Is(err, pool.ErrExists) {
		t.Errorf("second clone: %v, want ErrExists", err)
	}
	bad := specFor(pc, "x1")
	bad.Template = "templates/nope"
	if err := p.Clone(ctx, bad); !errors.Is(err, pool.ErrNotFound) || !strings.Contains(err.Error(), "templates/nope") {
		t.Errorf("missing template: %v, want ErrNotFound naming it", err)
	}
	bad = specFor(pc, "x2")
	bad.Folder = "pools/new"
	if err := p.Clone(ctx, bad); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("missing folder without create_folders: %v, want ErrNotFound", err)
	}
	bad = specFor(pc, "x3")
	bad.CloneTarget = "nocluster"
	if err := p.Clone(ctx, bad); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("missing clone target: %v, want ErrNotFound", err)
	}
	bad = specFor(pc, "x4")
	bad.Datastore = "nods"
	if err := p.Clone(ctx, bad); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("missing datastore: %v, want ErrNotFound", err)
	}
	if err := p.Clone(ctx, specFor(pc, "a/b")); err == nil {
		t.Error("clone with a slash in the name: want an error")
	}
}

func TestCloneCreatesFoldersAndTargets(t *testing.T) {
	pools := testPools()
	p := MustOpenSim(t, pools, func(c *Config) { c.CreateFolders = true })
	pc := pools[1] // no datastore, default clone target
	pc.Folder = "new/deep/folder"
	var g errgroup.Group
	for _, n := range names("mk", 4) { // concurrent creators of the same folders
		g.Go(func() error { return p.Clone(ctxT(t), specFor(pc, n)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	pc.CloneTarget = "DC0_C0/Resources/cluster1" // a resource pool path
	mustClone(t, p, pc, "rp-path")
	pc.CloneTarget = "DC0_C0" // a cluster
	mustClone(t, p, pc, "cluster")
	vms, err := p.List(ctxT(t), "", pc.Folder)
	if err != nil || len(vms) != 6 {
		t.Fatalf("List: %d VMs, %v; want 6", len(vms), err)
	}
}

func TestDestroy(t *testing.T) {
	p, loc := cloneOnSim(t, "gone")
	ctx := ctxT(t)
	if err := p.Destroy(ctx, loc); err != nil {
		t.Fatalf("Destroy: %v", err)
	}
	if err := p.Destroy(ctx, loc); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("Destroy again: %v, want ErrNotFound", err)
	}
	vms, err := p.List(ctx, loc.Datacenter, loc.Folder)
	if err != nil || len(vms) != 0 {
		t.Errorf("List after destroy: %v, %v", vms, err)
	}
}

func TestSnapshotRevert(t *testing.T) {
	p, loc := cloneOnSim(t, "snap")
	ctx := ctxT(t)
	if err := p.Snapshot(ctx, loc, "s1", true); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if err := p.Snapshot(ctx, loc, "s2", false); err != nil {
		t.Fatalf("Snapshot s2: %v", err)
	}
	// Names are made per job: one that exists is an earlier attempt's.
	if err := p.Snapshot(ctx, loc, "s1", true); err != nil {
		t.Errorf("Snapshot s1 again: %v, want success", err)
	}
	if err := p.Revert(ctx, loc, "s1"); err != nil {
		t.Errorf("Revert s1: %v", err)
	}
	if err := p.Revert(ctx, loc, "nope"); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("Revert unknown: %v, want ErrNotFound", err)
	}
	mvm := vmProps(t, p, loc, "snapshot")
	if want, _ := searchTree(mvm.Snapshot.RootSnapshotList, "s1"); *mvm.Snapshot.CurrentSnapshot != want {
		t.Errorf("current snapshot %v, want s1 %v", mvm.Snapshot.CurrentSnapshot, want)
	}
	if got := snapshotNames(mvm.Snapshot.RootSnapshotList); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("snapshots %v, want [s1 s2]", got)
	}
}

func TestAddDisk(t *testing.T) {
	p, loc := cloneOnSim(t, "disk")
	ctx := ctxT(t)
	before := vmDisks(t, p, loc)
	if err := p.AddDisk(ctx, loc, 20, "7-1700000000"); err != nil {
		t.Fatalf("AddDisk: %v", err)
	}
	after := vmDisks(t, p, loc)
	if len(after) != len(before)+1 {
		t.Fatalf("disks %d → %d, want one more", len(before), len(after))
	}
	added := after[len(after)-1]
	if added.CapacityInKB != 20<<20 || !strings.HasSuffix(diskFileName(added), "/disk-vmpooler-7-1700000000.vmdk") {
		t.Errorf("added disk %d KB in %q, want 20 GB in <dir>/disk-vmpooler-7-1700000000.vmdk",
			added.CapacityInKB, diskFileName(added))
	}
	if dir := path.Dir(diskFileName(after[0])); path.Dir(diskFileName(added)) != dir {
		t.Errorf("added disk %q not beside the first one (%s)", diskFileName(added), dir)
	}
	// The same id again (a job attempted again) adds nothing; another adds.
	if err := p.AddDisk(ctx, loc, 20, "7-1700000000"); err != nil {
		t.Errorf("AddDisk again: %v, want success", err)
	}
	if got := len(vmDisks(t, p, loc)); got != len(before)+1 {
		t.Errorf("after the same id again: %d disks, want %d", got, len(before)+1)
	}
	if err := p.AddDisk(ctx, loc, 1, "8-1700000001"); err != nil {
		t.Errorf("AddDisk another: %v", err)
	}
	if got := len(vmDisks(t, p, loc)); got != len(before)+2 {
		t.Errorf("after another id: %d disks, want %d", got, len(before)+2)
	}
	if err := p.AddDisk(ctx, loc, 0, "9"); err == nil {
		t.Error("AddDisk 0: want an error")
	}
	for _, id := range []string{"", "../x", "a b", "[ds]"} {
		if err := p.AddDisk(ctx, loc, 1, id); err == nil {
			t.Errorf("AddDisk id %q: want an error", id)
		}
	}
}

func TestAnnotate(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	ctx := ctxT(t)
	mustClone(t, p, pc, "tagged")
	mustClone(t, p, pc, "plain")
	want := map[string]string{"vmpooler_pool": "centos-7", "vmpooler_user": "alice"}
	if err := p.Annotate(ctx, locFor(pc, "tagged"), want); err != nil {
		t.Fatalf("Annotate: %v", err)
	}
	if err := p.Annotate(ctx, locFor(pc, "tagged"), map[string]string{"vmpooler_user": "bob"}); err != nil {
		t.Fatalf("Annotate again: %v", err)
	}
	want["vmpooler_user"] = "bob"
	p.fieldsMu.Lock()
	clear(p.fields) // List must learn unknown field names by itself
	p.fieldsMu.Unlock()
	vms, err := p.List(ctx, pc.Datacenter, pc.Folder)
	if err != nil {
		t.Fatal(err)
	}
	for _, vm := range vms {
		switch vm.Name {
		case "tagged":
			if len(vm.Attributes) != 2 || vm.Attributes["vmpooler_pool"] != "centos-7" || vm.Attributes["vmpooler_user"] != "bob" {
				t.Errorf("attributes %v, want %v", vm.Attributes, want)
			}
		case "plain":
			if len(vm.Attributes) != 0 {
				t.Errorf("plain VM has attributes %v", vm.Attributes)
			}
		}
	}
	if err := p.Annotate(ctx, locFor(pc, "nope"), want); !errors.Is(err, pool.ErrNotFound) {
		t.Errorf("Annotate a missing VM: %v, want ErrNotFound", err)
	}
}

// TestListOneRetrieve checks that listing costs the same few round trips
// for 1 VM and for 30.
func TestListOneRetrieve(t *testing.T) {
	pc := testPools()[1]
	p := MustOpenSim(t, testPools())
	mustClone(t, p, pc, "one")
	calls := countCalls(p)
	if _, err := p.List(ctxT(t), "", pc.Folder); err != nil {
		t.Fatal(err)
	}
	one := calls.n.Swap(0)
	var g errgroup.Group
	g.SetLimit(10)
	for _, n := range names("many", 29) {
		g.Go(func() error { return p.Clone(ctxT(t), specFor(pc, n)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	calls.n.Store(0)
	vms, err := p.List(ctxT(t), "", pc.Folder)
	if err != nil || len(vms) != 30 {
		t.Fatalf("List: %d, %v", len(vms), err)
	}
	if many := calls.n.Load(); many != one || many > 2 {
		t.Errorf("round trips: %d for 1 VM, %d for 30; want the same, at most 2", one, many)
	}
}

// TestClone100 clones 100 VMs at concurrency 10 and destroys them.
func TestClone100(t *testing.T) {
	testenv.SkipIfShort(t, "clones 100 VMs on the simulator")
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	vmNames := names("bulk", 100)
	var g errgroup.Group
	g.SetLimit(10)
	for _, n := range vmNames {
		g.Go(func() error { return p.Clone(ctxT(t), specFor(pc, n)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	waitReady(t, p, pc, vmNames, "tools")
	for _, n := range vmNames {
		g.Go(func() error { return p.Destroy(ctxT(t), locFor(pc, n)) })
	}
	if err := g.Wait(); err != nil { // serialized by the provider in simulator mode
		t.Fatal(err)
	}
	if vms, err := p.List(ctxT(t), pc.Datacenter, pc.Folder); err != nil || len(vms) != 0 {
		t.Errorf("after destroy: %d VMs, %v", len(vms), err)
	}
}

func TestLinkedCloneSpec(t *testing.T) {
	pools := testPools()
	for _, global := range []bool{true, false} {
		p := MustOpenSim(t, pools, func(c *Config) { c.CreateLinkedClones = &global })
		cs, _, _, err := p.cloneSpec(ctxT(t), p.vc(), specFor(pools[0], "l"))
		if err != nil {
			t.Fatal(err)
		}
		linked := cs.Snapshot != nil && cs.Location.DiskMoveType == string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)
		if linked != global || cs.Location.Pool == nil || cs.Location.Datastore == nil || !cs.PowerOn {
			t.Errorf("create_linked_clones=%v: snapshot %v, move %q, pool %v, ds %v", global,
				cs.Snapshot, cs.Location.DiskMoveType, cs.Location.Pool, cs.Location.Datastore)
		}
	}
}

// A clone whose wait runs out (the pool's timeout) has its task cancelled
// in vCenter: left running, it would make its VM later, as an orphan,
// while the manager clones another in its place (real-lab hazard 5: on a
// host that queues clones this feeds on itself). Before, the task was left.
func TestCloneDeadlineCancelsTask(t *testing.T) {
	setTaskDelay(t, map[string]int{"CloneVm": 2000})
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	sent := countCalls(p)
	ctx, cancel := context.WithTimeout(ctxT(t), 300*time.Millisecond)
	defer cancel()
	err := p.Clone(ctx, specFor(pc, "slow"))
	if err == nil || !strings.Contains(err.Error(), "its task was cancelled") {
		t.Errorf("clone past its deadline: %v, want an error saying its task was cancelled", err)
	}
	if !sent.saw("*methods.CancelTaskBody") {
		t.Error("no CancelTask sent")
	}

	// A wait cut short by a shutdown (the manager's ErrShutdown) leaves
	// the task, for the next start to find its VM; it is an error, not a
	// finished clone. (Before, govmomi's answer to a cancelled wait, no
	// error, made it a finished clone.)
	sent = countCalls(p)
	shutdown, stop := context.WithCancelCause(ctxT(t))
	time.AfterFunc(300*time.Millisecond, func() { stop(pool.ErrShutdown) })
	if err := p.Clone(shutdown, specFor(pc, "shutdown")); err == nil || sent.saw("*methods.CancelTaskBody") {
		t.Errorf("clone cut short by a shutdown: %v, CancelTask sent: %v; want an error and no cancel", err, sent.saw("*methods.CancelTaskBody"))
	}
	// Given up by the manager (cancelled, another cause): cancelled.
	sent = countCalls(p)
	given, giveUp := context.WithCancel(ctxT(t))
	time.AfterFunc(300*time.Millisecond, giveUp)
	if err := p.Clone(given, specFor(pc, "given-up")); err == nil || !sent.saw("*methods.CancelTaskBody") {
		t.Errorf("clone given up: %v, CancelTask sent: %v; want an error and a cancel", err, sent.saw("*methods.CancelTaskBody"))
	}
	// The simulator runs a cancelled clone to its end all the same (a real
	// vCenter rolls it back); waiting for the three orders its reads of
	// the task delay before the test puts the delay back.
	waitReady(t, p, pc, []string{"slow", "shutdown", "given-up"}, "none")
}

// A clone carries its name in guestinfo.hostname; with cloud_init also in
// cloud-init's VMware datasource metadata (guestinfo.metadata, base64
// JSON), which a stock cloud-init template reads (it does not read
// guestinfo.hostname).
func TestCloneGuestinfo(t *testing.T) {
	extra := func(p *Provider, loc pool.Location) map[string]string {
		out := map[string]string{}
		for _, o := range vmProps(t, p, loc, "config.extraConfig").Config.ExtraConfig {
			if v := o.GetOptionValue(); strings.HasPrefix(v.Key, "guestinfo.") {
				out[v.Key], _ = v.Value.(string)
			}
		}
		return out
	}
	p, loc := cloneOnSim(t, "plain")
	if g := extra(p, loc); g["guestinfo.hostname"] != "plain" || g["guestinfo.metadata"] != "" {
		t.Errorf("without cloud_init: %v, want guestinfo.hostname only", g)
	}
	p, loc = cloneOnSim(t, "cinit", func(c *Config) { c.CloudInit = true })
	g := extra(p, loc)
	md, err := base64.StdEncoding.DecodeString(g["guestinfo.metadata"])
	var m map[string]string
	if err == nil {
		err = json.Unmarshal(md, &m)
	}
	if err != nil || g["guestinfo.metadata.encoding"] != "base64" || m["instance-id"] != "cinit" || m["local-hostname"] != "cinit" || g["guestinfo.hostname"] != "cinit" {
		t.Errorf("with cloud_init: %v (metadata %s, %v)", g, md, err)
	}
}
