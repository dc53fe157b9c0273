package vsphere

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25/mo"

	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmpooler/vmpooler/pool"
)

// serveModel serves a richer simulator model than the embedded one and
// returns its address.
func serveModel(t *testing.T, m *simulator.Model) string {
	t.Helper()
	if err := m.Create(); err != nil {
		t.Fatal(err)
	}
	m.Service.TLS = new(tls.Config)
	s := m.Service.NewServer()
	t.Cleanup(func() { s.Close(); m.Remove() })
	return s.URL.Host
}

// labModel: a datacenter inside a folder (F0/DC0) with two clusters, a
// standalone host and a datastore cluster.
func labModel() *simulator.Model {
	m := simulator.VPX()
	m.Folder = 1
	m.Cluster = 2
	m.Host = 1
	m.Pod = 1
	m.Machine = 1
	return m
}

// vmPathIn returns the path, relative to <dc>/vm/, of the model VM name.
func vmPathIn(t *testing.T, p *Provider, dcPath, name string) string {
	t.Helper()
	ctx := ctxT(t)
	c := p.vc()
	v, err := view.NewManager(c).CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"VirtualMachine"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Destroy(ctx)
	var vms []mo.VirtualMachine
	if err := v.Retrieve(ctx, []string{"VirtualMachine"}, []string{"name"}, &vms); err != nil {
		t.Fatal(err)
	}
	for _, vm := range vms {
		if vm.Name == name {
			obj, err := find.NewFinder(c).ObjectReference(ctx, vm.Self)
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimPrefix(obj.(*object.VirtualMachine).InventoryPath, "/"+dcPath+"/vm/")
		}
	}
	t.Fatalf("no VM %s", name)
	return ""
}

func TestPlacementOnRicherInventory(t *testing.T) {
	addr := serveModel(t, labModel())
	open := func(pools []pool.PoolConfig, dc string) (*Provider, error) {
		p := New(Config{Server: addr, Username: "user", Password: "pass", Insecure: true, Datacenter: dc, ReadyCheck: "tools"}, pools, simtest.Logger())
		err := p.Open(ctxT(t))
		if err == nil {
			t.Cleanup(func() { p.Close() })
		}
		return p, err
	}
	pc := pool.PoolConfig{Name: "p", Folder: "pool-p"}

	// No clone_target with several clusters and a host: refused, listing them.
	_, err := open([]pool.PoolConfig{pc}, "DC0")
	if err == nil {
		t.Fatal("Open accepted a pool without clone_target in a datacenter with 3 places to clone to")
	}
	for _, want := range []string{"clone_target is required", "DC0_C0 (cluster)", "DC0_C1 (cluster)", "DC0_H0 (standalone host)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}

	// E8: the datacenter is F0/DC0; by name (unique) and by path.
	pc.CloneTarget = "DC0_H0"
	for _, dc := range []string{"DC0", "F0/DC0"} {
		p, err := open([]pool.PoolConfig{pc}, dc)
		if err != nil {
			t.Fatalf("Open with datacenter %q: %v", dc, err)
		}
		if got, _ := p.datacenter(""); got != "F0/DC0" {
			t.Errorf("datacenter %q resolved to %q, want F0/DC0", dc, got)
		}
	}
	p, _ := open([]pool.PoolConfig{pc}, "DC0")
	ctx := ctxT(t)
	pc.Template = vmPathIn(t, p, "F0/DC0", "DC0_H0_VM0")
	pc.Folder = ""
	if _, err := p.folder(ctx, p.vc(), "F0/DC0", "pool-p", true); err != nil {
		t.Fatal(err)
	}
	pc.Folder = "pool-p"
	// A standalone host as clone_target: the clone's resource pool is that host's.
	mustClone(t, p, pc, "on-host")
	mvm := vmProps(t, p, locFor(pc, "on-host"), "resourcePool")
	var rp mo.ResourcePool
	if err := object.NewResourcePool(p.vc(), *mvm.ResourcePool).Properties(ctx, *mvm.ResourcePool, []string{"owner"}, &rp); err != nil {
		t.Fatal(err)
	}
	var owner mo.ComputeResource
	if err := object.NewReference(p.vc(), rp.Owner).(*object.ComputeResource).Properties(ctx, rp.Owner, []string{"name"}, &owner); err != nil {
		t.Fatal(err)
	}
	if owner.Name != "DC0_H0" {
		t.Errorf("clone placed in %s's resource pool, want DC0_H0's", owner.Name)
	}
	// A cluster inside a host folder, by name.
	pc.CloneTarget = "DC0_C1"
	mustClone(t, p, pc, "on-cluster")

	// A datastore cluster named as datastore: a clear error.
	bad := specFor(pc, "on-pod")
	bad.Datastore = "DC0_POD0"
	err = p.Clone(ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "datastore cluster (StoragePod)") {
		t.Errorf("datastore = a StoragePod: %v, want a clear error", err)
	}
}
