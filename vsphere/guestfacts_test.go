package vsphere

import (
	"errors"
	"testing"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

func TestGuestIP(t *testing.T) {
	bridge := types.GuestNicInfo{DeviceConfigId: -1, IpAddress: []string{"172.17.0.1"}} // docker0 in the guest
	nic := types.GuestNicInfo{DeviceConfigId: 4000, IpAddress: []string{"fe80::1", "2001:db8::5", "10.0.0.7"}}
	for _, c := range []struct {
		name     string
		primary  string
		nics     []types.GuestNicInfo
		preferV6 bool
		want     string
	}{
		{"IPv4 preferred over the primary IPv6", "2001:db8::5", []types.GuestNicInfo{bridge, nic}, false, "10.0.0.7"},
		{"IPv6 when preferred", "10.0.0.7", []types.GuestNicInfo{bridge, nic}, true, "2001:db8::5"},
		{"a bridge is never used", "172.17.0.1", []types.GuestNicInfo{bridge}, false, ""},
		{"link-local only", "fe80::1", []types.GuestNicInfo{{DeviceConfigId: 4000, IpAddress: []string{"fe80::1", "169.254.3.3"}}}, false, ""},
		{"no NIC data: the primary", "10.1.1.1", nil, false, "10.1.1.1"},
		{"no NIC data, unusable primary", "0.0.0.0", nil, false, ""},
		{"IPv6 only, IPv4 preferred", "", []types.GuestNicInfo{{DeviceConfigId: 4000, IpAddress: []string{"2001:db8::9"}}}, false, "2001:db8::9"},
	} {
		if got := guestIP(c.primary, c.nics, c.preferV6); got != c.want {
			t.Errorf("%s: guestIP = %q, want %q", c.name, got, c.want)
		}
	}
}

// A VM whose host is disconnected has stale guest data: List reports it
// Unknown without an IP, and Ready says ErrTransient (the manager keeps it
// as it is) instead of judging it on stale facts.
func TestDisconnectedHostVMIsUnknown(t *testing.T) {
	pc := testPools()[1]
	p := MustOpenSim(t, testPools())
	mustClone(t, p, pc, "far")
	waitReady(t, p, pc, []string{"far"}, "tools")
	vm, err := p.vm(ctxT(t), p.vc(), locFor(pc, "far"))
	if err != nil {
		t.Fatal(err)
	}
	reg := p.simModel().Map()
	svm := reg.Get(vm.Reference()).(*simulator.VirtualMachine)
	ctx := p.simModel().Service.Context
	reg.WithLock(ctx, svm, func() {
		reg.Update(ctx, svm, []types.PropertyChange{{Name: "runtime.connectionState", Val: types.VirtualMachineConnectionStateDisconnected}})
	})
	vms, err := p.List(ctxT(t), pc.Datacenter, pc.Folder)
	if err != nil || len(vms) != 1 {
		t.Fatalf("List: %v %v", vms, err)
	}
	if !vms[0].Unknown || vms[0].IP != "" || vms[0].ToolsRunning {
		t.Errorf("disconnected VM = %+v, want Unknown without guest data", vms[0])
	}
	if ok, _, err := p.Ready(ctxT(t), vms[0], "tools"); ok || !errors.Is(err, pool.ErrTransient) {
		t.Errorf("Ready of a disconnected VM: %v, %v; want ErrTransient", ok, err)
	}
}
