package vsphere

import (
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// Upstream's pool keys network and snapshot_mainMem_* reach the clone: its
// first NIC on the named port group, mainMem.* in its extraConfig.
func TestUpstreamPoolKeys(t *testing.T) {
	pools := testPools()
	pools[1].Network = "DC0_DVPG0" // a distributed port group of the model
	blockPages, iowait := pool.IntString(2048), pool.IntString(5)
	pools[1].SnapshotMainMemIOBlockPages = &blockPages
	pools[1].SnapshotMainMemIOWait = &iowait
	pc := pools[1]
	p := MustOpenSim(t, pools)
	ctx := ctxT(t)
	mustClone(t, p, pc, "netted")
	mvm := vmProps(t, p, locFor(pc, "netted"), "config.extraConfig", "config.hardware.device", "network")
	got := map[string]any{}
	for _, o := range mvm.Config.ExtraConfig {
		got[o.GetOptionValue().Key] = o.GetOptionValue().Value
	}
	if got["mainMem.ioBlockPages"] != "2048" || got["mainMem.iowait"] != "5" {
		t.Errorf("extraConfig mainMem.* = %v, %v; want 2048, 5", got["mainMem.ioBlockPages"], got["mainMem.iowait"])
	}
	nics := object.VirtualDeviceList(mvm.Config.Hardware.Device).SelectByType((*types.VirtualEthernetCard)(nil))
	if len(nics) == 0 {
		t.Fatal("clone has no NIC")
	}
	b, ok := nics[0].GetVirtualDevice().Backing.(*types.VirtualEthernetCardDistributedVirtualPortBackingInfo)
	if !ok {
		t.Fatalf("first NIC backing = %T, want a distributed port group's", nics[0].GetVirtualDevice().Backing)
	}
	var pg mo.DistributedVirtualPortgroup
	ref := types.ManagedObjectReference{Type: "DistributedVirtualPortgroup", Value: b.Port.PortgroupKey}
	if err := object.NewDistributedVirtualPortgroup(p.vc(), ref).Properties(ctx, ref, []string{"name"}, &pg); err != nil || pg.Name != "DC0_DVPG0" {
		t.Errorf("first NIC on port group %q (%v), want DC0_DVPG0", pg.Name, err)
	}
	bad := specFor(pc, "nonet")
	pools[1].Network = "no-such-net"
	p2 := MustOpenSim(t, pools)
	if err := p2.Clone(ctx, bad); err == nil {
		t.Error("clone onto a missing network succeeded")
	}
}
