package vsphere

import (
	"context"
	"fmt"
	"sort"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/vim25"
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
		return p.notConnected()
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
