package vsphere

import (
	"strings"
	"testing"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/types"
)

// A disk goes on a controller that can take it while the VM runs: SCSI,
// then SATA, then NVMe; IDE only on a powered-off VM; else a clear error.
func TestDiskController(t *testing.T) {
	ide := &types.VirtualIDEController{VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: 200}}}
	sata := &types.VirtualAHCIController{VirtualSATAController: types.VirtualSATAController{VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: 15000}}}}
	nvme := &types.VirtualNVMEController{VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: 31000}}}
	scsi := &types.ParaVirtualSCSIController{VirtualSCSIController: types.VirtualSCSIController{VirtualController: types.VirtualController{VirtualDevice: types.VirtualDevice{Key: 1000}}}}
	for _, c := range []struct {
		name    string
		devices object.VirtualDeviceList
		running bool
		want    int32 // controller key; 0: an error
	}{
		{"SCSI first", object.VirtualDeviceList{ide, sata, scsi}, true, 1000},
		{"SATA without SCSI", object.VirtualDeviceList{ide, nvme, sata}, true, 15000},
		{"NVMe only", object.VirtualDeviceList{ide, nvme}, true, 31000},
		{"IDE only, running: refused", object.VirtualDeviceList{ide}, true, 0},
		{"IDE only, powered off", object.VirtualDeviceList{ide}, false, 200},
	} {
		ctrl, err := diskController(c.devices, c.running)
		switch {
		case c.want == 0 && (err == nil || !strings.Contains(err.Error(), "IDE disks cannot be added to a running VM")):
			t.Errorf("%s: %v, %v; want a clear error", c.name, ctrl, err)
		case c.want != 0 && (err != nil || ctrl.GetVirtualController().Key != c.want):
			t.Errorf("%s: %v, %v; want controller %d", c.name, ctrl, err, c.want)
		}
	}
}
