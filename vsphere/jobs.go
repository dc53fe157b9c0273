package vsphere

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// Snapshot, Revert and AddDisk are long tasks: the caller's ctx (the
// manager's job_timeout) bounds them, task wait included, while reloginRT
// bounds each round trip by vsphere_timeout. A call cut short may leave its
// task running in vCenter, so each of them first waits for the VM's tasks
// in progress and then looks at what is there before doing anything.

// taskClient returns the client for an operation bounded by the caller.
func (p *Provider) taskClient() (*vim25.Client, error) {
	if c := p.vc(); c != nil {
		return c, nil
	}
	return nil, p.notConnected()
}

// Snapshot creates the snapshot name, of the memory too when memory is set
// (so that a revert finds the VM running), quiescing the guest, as upstream
// does. A snapshot of that name that exists already is success: names are
// made per job, so an earlier attempt of this job made it.
func (p *Provider) Snapshot(ctx context.Context, loc pool.Location, name string, memory bool) error {
	c, err := p.taskClient()
	if err != nil {
		return err
	}
	op := "snapshot " + loc.Name + " " + name
	if name == "" {
		return fmt.Errorf("vsphere: %s: empty snapshot name", op)
	}
	vm, err := p.vm(ctx, c, loc)
	if err != nil {
		return wrapErr(op, err)
	}
	if _, err := settle(ctx, c, vm); err != nil {
		return wrapErr(op, err)
	}
	if _, err := findSnapshot(ctx, vm, name); err == nil {
		return nil
	} else if !errors.Is(err, pool.ErrNotFound) {
		return wrapErr(op, err)
	}
	task, err := vm.CreateSnapshot(ctx, name, "vmpooler", memory, true)
	if err == nil {
		_, err = waitTask(ctx, c, task.Reference())
	}
	return wrapErr(op, err)
}

// Revert reverts the VM to the snapshot name (ErrNotFound if it has none
// of that name). A VM that was powered on is powered on again if the
// revert left it off, as it does with a snapshot taken without memory.
func (p *Provider) Revert(ctx context.Context, loc pool.Location, name string) error {
	c, err := p.taskClient()
	if err != nil {
		return err
	}
	op := "revert " + loc.Name + " to " + name
	vm, err := p.vm(ctx, c, loc)
	if err != nil {
		return wrapErr(op, err)
	}
	waited, err := settle(ctx, c, vm)
	if err != nil {
		return wrapErr(op, err)
	}
	state, err := vm.PowerState(ctx)
	if err != nil {
		return wrapErr(op, err)
	}
	// A revert of an earlier attempt that was still running has already
	// changed the power state: the VM was on before it (checked-out VMs are).
	wasOn := state == types.VirtualMachinePowerStatePoweredOn || hasRevert(waited)
	ref, err := findSnapshot(ctx, vm, name)
	if err != nil {
		return wrapErr(op, err)
	}
	req := types.RevertToSnapshot_Task{This: ref}
	res, err := methods.RevertToSnapshot_Task(ctx, c, &req)
	if err == nil {
		_, err = waitTask(ctx, c, res.Returnval)
	}
	if err != nil || !wasOn {
		return wrapErr(op, err)
	}
	if state, err = vm.PowerState(ctx); err != nil {
		return wrapErr(op+": power state", err)
	}
	if state == types.VirtualMachinePowerStatePoweredOn {
		return nil
	}
	task, err := vm.PowerOn(ctx)
	if err == nil {
		_, err = waitTask(ctx, c, task.Reference())
	}
	if err != nil && fault.Is(err, &types.InvalidPowerState{}) {
		err = nil // powered on meanwhile
	}
	return wrapErr(op+": power on", err)
}

// hasRevert reports whether one of tasks reverts to a snapshot.
func hasRevert(tasks []types.TaskInfo) bool {
	for _, t := range tasks {
		if strings.Contains(strings.ToLower(t.Name+" "+t.DescriptionId), "revert") {
			return true
		}
	}
	return false
}

// settle waits until the tasks in progress on vm (those of an earlier
// attempt whose wait was cut short, typically) have ended, whatever their
// outcome, and returns their final infos. It never cancels them.
func settle(ctx context.Context, c *vim25.Client, vm *object.VirtualMachine) ([]types.TaskInfo, error) {
	var mvm mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"recentTask"}, &mvm); err != nil {
		return nil, err
	}
	if len(mvm.RecentTask) == 0 {
		return nil, nil
	}
	tasks, err := taskInfos(ctx, c, mvm.RecentTask)
	if err != nil {
		return nil, err
	}
	var done []types.TaskInfo
	for _, t := range tasks {
		if t.State != types.TaskInfoStateQueued && t.State != types.TaskInfoStateRunning {
			continue
		}
		info, err := object.NewTask(c, t.Task).WaitForResult(ctx)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if info == nil {
			info = &t
		}
		_ = err // its outcome is read from the inventory, not from the task
		done = append(done, *info)
	}
	return done, nil
}

// taskInfos reads the infos of tasks in one round trip, skipping tasks
// vCenter has forgotten meanwhile.
func taskInfos(ctx context.Context, c *vim25.Client, refs []types.ManagedObjectReference) ([]types.TaskInfo, error) {
	var tasks []mo.Task
	pc := property.DefaultCollector(c)
	err := pc.Retrieve(ctx, refs, []string{"info"}, &tasks)
	if err != nil && fault.Is(err, &types.ManagedObjectNotFound{}) {
		tasks, err = nil, nil
		for _, ref := range refs { // one is gone: read them one by one
			var t mo.Task
			if e := pc.RetrieveOne(ctx, ref, []string{"info"}, &t); e == nil {
				tasks = append(tasks, t)
			} else if !fault.Is(e, &types.ManagedObjectNotFound{}) {
				return nil, e
			}
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]types.TaskInfo, len(tasks))
	for i, t := range tasks {
		out[i] = t.Info
	}
	return out, nil
}

// findSnapshot searches the snapshot tree depth first by name, by type
// (govmomi's FindSnapshot reports "not found" only as text).
func findSnapshot(ctx context.Context, vm *object.VirtualMachine, name string) (types.ManagedObjectReference, error) {
	var mvm mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"snapshot"}, &mvm); err != nil {
		return types.ManagedObjectReference{}, err
	}
	if mvm.Snapshot != nil {
		if ref, ok := searchTree(mvm.Snapshot.RootSnapshotList, name); ok {
			return ref, nil
		}
	}
	return types.ManagedObjectReference{}, notFound("snapshot", name)
}

func searchTree(list []types.VirtualMachineSnapshotTree, name string) (types.ManagedObjectReference, bool) {
	for _, t := range list {
		if t.Name == name {
			return t.Snapshot, true
		}
		if ref, ok := searchTree(t.ChildSnapshotList, name); ok {
			return ref, true
		}
	}
	return types.ManagedObjectReference{}, false
}

// AddDisk adds a thin-provisioned disk of sizeGB on a controller that can
// take it (diskController), in the VM's directory (on the pool's datastore
// when the pool names one, since clones are placed there), in a
// file named after id: "[ds] <dir>/<vm>-vmpooler-<id>.vmdk". A disk backed
// by that file already on the VM is success, so that a job attempted again
// after its wait was cut short never adds a second disk.
func (p *Provider) AddDisk(ctx context.Context, loc pool.Location, sizeGB int, id string) error {
	c, err := p.taskClient()
	if err != nil {
		return err
	}
	op := fmt.Sprintf("add a %d GB disk to %s", sizeGB, loc.Name)
	if sizeGB <= 0 {
		return fmt.Errorf("vsphere: %s: size must be positive", op)
	}
	if err := validDiskID(id); err != nil {
		return fmt.Errorf("vsphere: %s: %w", op, err)
	}
	vm, err := p.vm(ctx, c, loc)
	if err != nil {
		return wrapErr(op, err)
	}
	if _, err := settle(ctx, c, vm); err != nil {
		return wrapErr(op, err)
	}
	var mvm mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"config.hardware.device", "config.files.vmPathName", "runtime.powerState"}, &mvm); err != nil {
		return wrapErr(op, err)
	}
	if mvm.Config == nil {
		return fmt.Errorf("vsphere: %s: the VM has no configuration", op)
	}
	file, err := diskFile(mvm.Config.Files.VmPathName, loc.Name, id)
	if err != nil {
		return fmt.Errorf("vsphere: %s: %w", op, err)
	}
	devices := object.VirtualDeviceList(mvm.Config.Hardware.Device)
	if hasDiskFile(devices, file) {
		return nil
	}
	ctrl, err := diskController(devices, mvm.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOff)
	if err != nil {
		return fmt.Errorf("vsphere: %s: %w", op, err)
	}
	// The backing's datastore reference "is not used for configuration":
	// the file name says where the disk goes.
	disk := devices.CreateDisk(ctrl, types.ManagedObjectReference{}, file)
	disk.CapacityInKB = int64(sizeGB) << 20
	return wrapErr(op, vm.AddDevice(ctx, disk))
}

// diskController picks the controller a new disk goes on: one with a free
// unit that can take a disk while the VM runs (SCSI, then SATA, then
// NVMe); IDE only when the VM is powered off, since IDE cannot hot-add.
func diskController(devices object.VirtualDeviceList, running bool) (types.BaseVirtualController, error) {
	kinds := []string{"scsi", "sata", "nvme"}
	if !running {
		kinds = append(kinds, "ide")
	}
	for _, kind := range kinds {
		if c, err := devices.FindDiskController(kind); err == nil {
			return c, nil
		}
	}
	if running {
		return nil, errors.New("the VM has no SCSI, SATA or NVMe controller with a free unit, and IDE disks cannot be added to a running VM: give the template a SCSI or SATA controller")
	}
	return nil, errors.New("the VM has no disk controller with a free unit")
}

// validDiskID accepts the ids that make a plain file name.
func validDiskID(id string) error {
	if id == "" || len(id) > 64 {
		return errors.New("disk id must have 1 to 64 characters")
	}
	if !pool.ValidChars(id, "-_") {
		return fmt.Errorf("disk id %q: only letters, digits, '-' and '_'", id)
	}
	return nil
}

// diskFile returns the datastore path of the disk id of VM vm, in the
// directory of its configuration file vmx ("[ds] dir/vm.vmx").
func diskFile(vmx, vm, id string) (string, error) {
	var p object.DatastorePath
	if !p.FromString(vmx) || p.Datastore == "" {
		return "", fmt.Errorf("cannot place a disk beside %q", vmx)
	}
	p.Path = path.Join(path.Dir(p.Path), vm+"-vmpooler-"+id+".vmdk")
	return p.String(), nil
}

// hasDiskFile reports whether a disk of devices is backed by file, or by a
// delta disk of it (a snapshot taken since adds one to the chain).
func hasDiskFile(devices object.VirtualDeviceList, file string) bool {
	for _, d := range devices.SelectByType((*types.VirtualDisk)(nil)) {
		b, ok := d.GetVirtualDevice().Backing.(*types.VirtualDiskFlatVer2BackingInfo)
		for ok && b != nil {
			if b.FileName == file {
				return true
			}
			b = b.Parent
		}
	}
	return false
}
