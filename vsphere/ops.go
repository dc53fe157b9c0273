package vsphere

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// vm finds the VM of loc by inventory path (one round trip).
func (p *Provider) vm(ctx context.Context, c *vim25.Client, loc pool.Location) (*object.VirtualMachine, error) {
	if err := validName(loc.Name); err != nil {
		return nil, err
	}
	dc, err := p.datacenter(loc.Datacenter)
	if err != nil {
		return nil, err
	}
	full := dc + "/vm/"
	if f := trimSlash(loc.Folder); f != "" {
		full += f + "/"
	}
	full += loc.Name
	ref, err := p.findPath(ctx, c, "VM", full)
	if err != nil {
		return nil, err
	}
	vm, ok := ref.(*object.VirtualMachine)
	if !ok {
		return nil, notFound("VM (not a "+ref.Reference().Type+")", full)
	}
	vm.InventoryPath = full
	return vm, nil
}

// Destroy powers the VM off when it is on, then deletes it, if it is the
// pooler's: one read of its power state, template flag and ownership
// marker comes first, and a template or a VM that loc.Mine refuses gives
// ErrForeign with nothing done. ErrNotFound when it is already gone. Each
// round trip has vsphere_timeout; the power-off and destroy tasks are
// waited for within ctx.
func (p *Provider) Destroy(ctx context.Context, loc pool.Location) error {
	c := p.vc()
	if c == nil {
		return errClosed
	}
	op := "destroy " + loc.Name
	if p.simulated() {
		// govmomi's simulator has a data race between concurrent destroys
		// (Datastore.resolve reads what another destroy writes); one at a
		// time keeps -race runs clean. A real vCenter is not throttled.
		p.simDestroy.Lock()
		defer p.simDestroy.Unlock()
	}
	vm, err := p.vm(ctx, c, loc)
	if err != nil {
		return wrapErr(op, err)
	}
	var content []types.ObjectContent
	err = p.retrieveOwned(func(ownerPaths []string) error {
		return property.DefaultCollector(c).Retrieve(ctx, []types.ManagedObjectReference{vm.Reference()},
			append([]string{"runtime.powerState", "config.template"}, ownerPaths...), &content)
	})
	if err == nil && len(content) != 1 {
		err = notFound("VM", vm.InventoryPath)
	}
	if err != nil {
		return wrapErr(op, err)
	}
	var (
		owner    pool.Owner
		state    types.VirtualMachinePowerState
		template bool
	)
	for _, dp := range content[0].PropSet {
		switch dp.Name {
		case "runtime.powerState":
			state, _ = dp.Val.(types.VirtualMachinePowerState)
		case "config.template":
			template, _ = dp.Val.(bool)
		default:
			decodeMarker(&owner, dp.Name, dp.Val)
		}
	}
	switch {
	case template:
		return fmt.Errorf("vsphere: %s: %s is a template: %w", op, vm.InventoryPath, pool.ErrForeign)
	case !loc.Mine(owner):
		who := "it has no vmpooler marker and the store has no record of it"
		if owner.Instance != "" {
			who = "its marker names vmpooler instance " + owner.Instance
		}
		return fmt.Errorf("vsphere: %s: %s: %s: %w", op, vm.InventoryPath, who, pool.ErrForeign)
	}
	if state != types.VirtualMachinePowerStatePoweredOff {
		task, err := vm.PowerOff(ctx)
		if err == nil {
			_, err = waitTask(ctx, c, task.Reference())
		}
		if err != nil && !fault.IsAlreadyPoweredOffError(err) {
			return wrapErr(op+": power off", err)
		}
	}
	task, err := vm.Destroy(ctx)
	if err == nil {
		_, err = waitTask(ctx, c, task.Reference())
	}
	return wrapErr(op, err)
}

// Snapshot creates the snapshot name (ErrExists if the VM has one of that
// name), without memory, quiescing the guest as upstream does.
func (p *Provider) Snapshot(ctx context.Context, loc pool.Location, name string) error {
	c, ctx, cancel, err := p.begin(ctx)
	defer cancel()
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
	if _, err := findSnapshot(ctx, vm, name); err == nil {
		return fmt.Errorf("vsphere: %s: %w", op, pool.ErrExists)
	} else if !errors.Is(err, pool.ErrNotFound) {
		return wrapErr(op, err)
	}
	task, err := vm.CreateSnapshot(ctx, name, "vmpooler", false, true)
	if err == nil {
		err = task.Wait(ctx)
	}
	return wrapErr(op, err)
}

// Revert reverts the VM to the snapshot name (ErrNotFound if it has none
// of that name) and leaves the power state to the snapshot.
func (p *Provider) Revert(ctx context.Context, loc pool.Location, name string) error {
	c, ctx, cancel, err := p.begin(ctx)
	defer cancel()
	if err != nil {
		return err
	}
	op := "revert " + loc.Name + " to " + name
	vm, err := p.vm(ctx, c, loc)
	if err != nil {
		return wrapErr(op, err)
	}
	ref, err := findSnapshot(ctx, vm, name)
	if err != nil {
		return wrapErr(op, err)
	}
	req := types.RevertToSnapshot_Task{This: ref}
	res, err := methods.RevertToSnapshot_Task(ctx, c, &req)
	if err == nil {
		err = object.NewTask(c, res.Returnval).Wait(ctx)
	}
	return wrapErr(op, err)
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

// AddDisk adds a thin-provisioned disk of sizeGB on the VM's SCSI
// controller (or its first disk controller), in the VM's directory.
func (p *Provider) AddDisk(ctx context.Context, loc pool.Location, sizeGB int) error {
	c, ctx, cancel, err := p.begin(ctx)
	defer cancel()
	if err != nil {
		return err
	}
	op := fmt.Sprintf("add a %d GB disk to %s", sizeGB, loc.Name)
	if sizeGB <= 0 {
		return fmt.Errorf("vsphere: %s: size must be positive", op)
	}
	vm, err := p.vm(ctx, c, loc)
	if err != nil {
		return wrapErr(op, err)
	}
	var mvm mo.VirtualMachine
	if err := vm.Properties(ctx, vm.Reference(), []string{"config.hardware.device", "datastore"}, &mvm); err != nil {
		return wrapErr(op, err)
	}
	if mvm.Config == nil || len(mvm.Datastore) == 0 {
		return fmt.Errorf("vsphere: %s: the VM has no configuration or datastore", op)
	}
	devices := object.VirtualDeviceList(mvm.Config.Hardware.Device)
	ctrl, err := devices.FindDiskController("")
	if err != nil {
		if ctrl, err = devices.FindDiskController("ide"); err != nil {
			return fmt.Errorf("vsphere: %s: no disk controller: %w", op, err)
		}
	}
	disk := devices.CreateDisk(ctrl, mvm.Datastore[0], "")
	disk.CapacityInKB = int64(sizeGB) << 20
	return wrapErr(op, vm.AddDevice(ctx, disk))
}

// Annotate sets custom attributes (one field per key, created on first
// use, for VirtualMachine objects) on the VM. List returns them in
// VMInfo.Attributes.
func (p *Provider) Annotate(ctx context.Context, loc pool.Location, values map[string]string) error {
	c, ctx, cancel, err := p.begin(ctx)
	defer cancel()
	if err != nil {
		return err
	}
	op := "annotate " + loc.Name
	vm, err := p.vm(ctx, c, loc)
	if err != nil {
		return wrapErr(op, err)
	}
	m, err := object.GetCustomFieldsManager(c)
	if err != nil {
		return wrapErr(op+": custom attributes", err)
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		key, err := p.fieldKey(ctx, m, k)
		if err != nil {
			return wrapErr(op+": field "+k, err)
		}
		err = m.Set(ctx, vm.Reference(), key, values[k])
		if fault.Is(err, &types.InvalidArgument{}) {
			// The key is stale (vCenter was restarted or the field was
			// removed and made again): look the field up afresh, once.
			p.forgetField(k)
			if key, err = p.fieldKey(ctx, m, k); err == nil {
				err = m.Set(ctx, vm.Reference(), key, values[k])
			}
		}
		if err != nil {
			return wrapErr(op+": set "+k, err)
		}
	}
	return nil
}

// forgetField drops the cached key of the custom field name.
func (p *Provider) forgetField(name string) {
	p.fieldsMu.Lock()
	defer p.fieldsMu.Unlock()
	for k, n := range p.fields {
		if n == name {
			delete(p.fields, k)
		}
	}
}

// fieldKey returns the key of the custom field name, defining it if needed.
func (p *Provider) fieldKey(ctx context.Context, m *object.CustomFieldsManager, name string) (int32, error) {
	p.fieldsMu.Lock()
	for k, n := range p.fields {
		if n == name {
			p.fieldsMu.Unlock()
			return k, nil
		}
	}
	p.fieldsMu.Unlock()
	key, err := m.FindKey(ctx, name)
	if err == object.ErrKeyNameNotFound {
		def, aerr := m.Add(ctx, name, "VirtualMachine", nil, nil)
		switch {
		case aerr == nil:
			key, err = def.Key, nil
		case fault.Is(aerr, &types.DuplicateName{}): // defined concurrently
			key, err = m.FindKey(ctx, name)
		default:
			err = aerr
		}
	}
	if err != nil {
		return 0, err
	}
	p.fieldsMu.Lock()
	p.fields[key] = name
	p.fieldsMu.Unlock()
	return key, nil
}
