package vsphere

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// defaultCloneTimeout bounds a clone whose caller set no deadline
// (upstream's default pool timeout).
const defaultCloneTimeout = 15 * time.Minute

// Clone clones the pool's template into the pool's folder as spec.Name,
// placed on spec.CloneTarget and spec.Datastore, powers it on and returns
// when the clone task has finished. Lookups have vsphere_timeout each; the
// task wait is bounded by ctx (15 minutes when ctx has no deadline).
func (p *Provider) Clone(ctx context.Context, spec pool.CloneSpec) error {
	if err := validName(spec.Name); err != nil {
		return err
	}
	if spec.Template == "" {
		return fmt.Errorf("vsphere: clone %s: pool %q has no template", spec.Name, spec.Pool)
	}
	c := p.vc()
	if c == nil {
		return p.notConnected()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultCloneTimeout)
		defer cancel()
	}
	op := "clone " + spec.Name
	unlock := p.simLockViews() // resolving may create a container view
	cs, folder, tmpl, err := p.cloneSpec(ctx, c, spec)
	unlock()
	if err != nil {
		return wrapErr(op, err)
	}
	defer p.simLockClones()()
	task, err := tmpl.Clone(ctx, folder, spec.Name, *cs)
	if err == nil {
		// A wait cut short (its deadline, or the VM given up) cancels the
		// task; one cut short by a shutdown leaves it, for the next start
		// (or leader) to find its VM.
		if _, err = waitTask(ctx, c, task.Reference()); err != nil && ctx.Err() != nil && !errors.Is(context.Cause(ctx), pool.ErrShutdown) {
			err = p.cancelTask(task, err)
		}
	}
	if err != nil && spec.CloneTarget == "" && isFault(err, notFoundFaults) {
		// The cached default resource pool may be gone: find it afresh next time.
		if dc, derr := p.datacenter(spec.Datacenter); derr == nil {
			p.setDefaultTarget(dc, types.ManagedObjectReference{})
		}
	}
	return wrapErr(op, err)
}

// cancelTask cancels a clone task whose wait was cut short (the pool's
// timeout, or the manager gave the VM up): left running, it would make
// its VM later, as an orphan, while the manager clones another in its
// place. The cancel has its own deadline (vsphere_timeout); a task that
// cannot be cancelled (done meanwhile) is left, and its VM is then found
// as an orphan. It returns waitErr, saying what became of the task.
func (p *Provider) cancelTask(task *object.Task, waitErr error) error {
	ctx, cancel := context.WithTimeout(context.Background(), p.cfg.callTimeout())
	defer cancel()
	if err := task.Cancel(ctx); err != nil {
		p.logger.Warn("a clone task whose wait was cut short could not be cancelled", "task", task.Reference().Value, "err", err)
		return fmt.Errorf("%w (and cancelling its task: %v)", waitErr, err)
	}
	return fmt.Errorf("%w (its task was cancelled)", waitErr)
}

// cloneSpec resolves the template, folder, placement and datastore.
func (p *Provider) cloneSpec(ctx context.Context, c *vim25.Client, spec pool.CloneSpec) (*types.VirtualMachineCloneSpec, *object.Folder, *object.VirtualMachine, error) {
	dc, err := p.datacenter(spec.Datacenter)
	if err != nil {
		return nil, nil, nil, err
	}
	ref, err := p.findPath(ctx, c, "template", dc+"/vm/"+trimSlash(spec.Template))
	if err != nil {
		return nil, nil, nil, err
	}
	tmpl, ok := ref.(*object.VirtualMachine)
	if !ok {
		return nil, nil, nil, notFound("template (a VM)", spec.Template)
	}
	folder, err := p.folder(ctx, c, dc, spec.Folder, p.cfg.CreateFolders)
	if err != nil {
		return nil, nil, nil, err
	}
	f := find.NewFinder(c)
	dcObj, err := f.Datacenter(ctx, dc)
	if err != nil {
		return nil, nil, nil, err
	}
	f.SetDatacenter(dcObj)
	rpRef, cached := types.ManagedObjectReference{}, false
	if spec.CloneTarget == "" {
		rpRef, cached = p.defaultTarget(dc)
	}
	if !cached {
		rp, err := resourcePool(ctx, f, dcObj, spec.CloneTarget)
		if err != nil {
			return nil, nil, nil, err
		}
		rpRef = rp.Reference()
		if spec.CloneTarget == "" {
			p.setDefaultTarget(dc, rpRef)
		}
	}
	cs := &types.VirtualMachineCloneSpec{
		Location: types.VirtualMachineRelocateSpec{Pool: &rpRef},
		PowerOn:  true,
		Config:   p.cloneConfig(spec),
	}
	if spec.Datastore != "" {
		ds, err := datastore(ctx, f, spec.Datastore)
		if err != nil {
			return nil, nil, nil, err
		}
		dsRef := ds.Reference()
		cs.Location.Datastore = &dsRef
	}
	if p.linked(spec) {
		linked, err := linkedClone(ctx, tmpl, cs)
		if err != nil {
			return nil, nil, nil, err
		}
		p.noteLinked(spec, linked)
	}
	if pc, ok := p.poolConfig(spec.Pool); ok && pc.Network != "" {
		change, err := nicOnNetwork(ctx, f, tmpl, pc.Network)
		if err != nil {
			return nil, nil, nil, err
		}
		cs.Config.DeviceChange = append(cs.Config.DeviceChange, change)
	}
	return cs, folder, tmpl, nil
}

// poolConfig returns the configured pool name.
func (p *Provider) poolConfig(name string) (pool.PoolConfig, bool) {
	for _, pc := range p.pools {
		if pc.Name == name {
			return pc, true
		}
	}
	return pool.PoolConfig{}, false
}

// linked applies create_linked_clones to pools that do not set
// create_linked_clone themselves (the manager passes those as true).
func (p *Provider) linked(spec pool.CloneSpec) bool {
	if pc, ok := p.poolConfig(spec.Pool); ok && pc.LinkedClone == nil {
		return p.cfg.LinkedClones()
	}
	return spec.LinkedClone
}

// nicOnNetwork edits the template's first network card, in the clone, to
// connect to the network (a port group, standard or distributed) named
// name, as upstream's pool network does.
func nicOnNetwork(ctx context.Context, f *find.Finder, tmpl *object.VirtualMachine, name string) (types.BaseVirtualDeviceConfigSpec, error) {
	network, err := f.Network(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", name, err)
	}
	backing, err := network.EthernetCardBackingInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("network %q: %w", name, err)
	}
	devices, err := tmpl.Device(ctx)
	if err != nil {
		return nil, err
	}
	nics := devices.SelectByType((*types.VirtualEthernetCard)(nil))
	if len(nics) == 0 {
		return nil, fmt.Errorf("network %q: the template has no network card to connect", name)
	}
	card := nics[0].(types.BaseVirtualEthernetCard).GetVirtualEthernetCard()
	card.Backing = backing
	card.Connectable = &types.VirtualDeviceConnectInfo{Connected: true, StartConnected: true, AllowGuestControl: true}
	return &types.VirtualDeviceConfigSpec{Operation: types.VirtualDeviceConfigSpecOperationEdit, Device: nics[0]}, nil
}

// cloneConfig sets upstream's annotation, guestinfo.hostname and the
// ownership marker (owner.go). (vcsim ignores the annotation on clone;
// vCenter keeps it.)
func (p *Provider) cloneConfig(spec pool.CloneSpec) *types.VirtualMachineConfigSpec {
	note, _ := json.MarshalIndent(map[string]string{
		"name":               spec.Name,
		"created_by":         p.cfg.Username,
		"base_template":      spec.Template,
		"creation_timestamp": time.Now().UTC().Format(time.RFC3339),
	}, "", "  ")
	extra := append([]types.BaseOptionValue{
		&types.OptionValue{Key: "guestinfo.hostname", Value: spec.Name},
	}, markerOptions(spec.Instance, spec.Pool)...)
	if p.cfg.CloudInit {
		extra = append(extra, cloudInitMetadata(spec.Name)...)
	}
	if pc, ok := p.poolConfig(spec.Pool); ok {
		if n := pc.SnapshotMainMemIOBlockPages; n != nil {
			extra = append(extra, &types.OptionValue{Key: "mainMem.ioBlockPages", Value: strconv.Itoa(int(*n))})
		}
		if n := pc.SnapshotMainMemIOWait; n != nil {
			extra = append(extra, &types.OptionValue{Key: "mainMem.iowait", Value: strconv.Itoa(int(*n))})
		}
	}
	return &types.VirtualMachineConfigSpec{Annotation: string(note), ExtraConfig: extra}
}

// cloudInitMetadata is the metadata of cloud-init's VMware datasource for
// a clone named name: a new instance (so per-instance modules run, host
// keys included) whose hostname is name. Base64, as the datasource reads
// it with guestinfo.metadata.encoding.
func cloudInitMetadata(name string) []types.BaseOptionValue {
	md, _ := json.Marshal(map[string]string{"instance-id": name, "local-hostname": name})
	return []types.BaseOptionValue{
		&types.OptionValue{Key: "guestinfo.metadata", Value: base64.StdEncoding.EncodeToString(md)},
		&types.OptionValue{Key: "guestinfo.metadata.encoding", Value: "base64"},
	}
}

// linkedClone makes cs a linked clone when the template allows it: from
// its current snapshot, or onto its delta disks (upstream's
// moveChildMostDiskBacking). Otherwise the clone is a full one, and it
// reports false.
func linkedClone(ctx context.Context, tmpl *object.VirtualMachine, cs *types.VirtualMachineCloneSpec) (bool, error) {
	var mvm mo.VirtualMachine
	if err := tmpl.Properties(ctx, tmpl.Reference(), []string{"snapshot", "config.hardware.device"}, &mvm); err != nil {
		return false, err
	}
	if mvm.Snapshot != nil && mvm.Snapshot.CurrentSnapshot != nil {
		cs.Snapshot = mvm.Snapshot.CurrentSnapshot
		cs.Location.DiskMoveType = string(types.VirtualMachineRelocateDiskMoveOptionsCreateNewChildDiskBacking)
		return true, nil
	}
	if mvm.Config == nil {
		return false, nil
	}
	for _, d := range object.VirtualDeviceList(mvm.Config.Hardware.Device).SelectByType((*types.VirtualDisk)(nil)) {
		if b, ok := d.GetVirtualDevice().Backing.(*types.VirtualDiskFlatVer2BackingInfo); ok && b.Parent != nil {
			cs.Location.DiskMoveType = string(types.VirtualMachineRelocateDiskMoveOptionsMoveChildMostDiskBacking)
			return true, nil
		}
	}
	return false, nil
}

// noteLinked records whether a pool that asks for linked clones gets them.
// When its template has no snapshot (nor delta disks) the clones are full
// copies: said once in the log, and kept as a note for /status until a
// clone is linked again.
func (p *Provider) noteLinked(spec pool.CloneSpec, linked bool) {
	p.notesMu.Lock()
	defer p.notesMu.Unlock()
	if linked {
		delete(p.notes, spec.Pool)
		return
	}
	note := fmt.Sprintf("linked clones requested, but template %s has no snapshot: making full clones (take a snapshot of the template to get linked clones)", spec.Template)
	if p.notes[spec.Pool] != note {
		p.logger.Warn("making full clones: the template has no snapshot", "pool", spec.Pool, "template", spec.Template,
			"fix", "take a snapshot of the template (govc snapshot.create -vm <template> base), or set create_linked_clone = false")
		p.notes[spec.Pool] = note
	}
}

// Notes implements pool.NoteProvider: pool → remarks for /status.
func (p *Provider) Notes() map[string][]string {
	p.notesMu.Lock()
	defer p.notesMu.Unlock()
	out := make(map[string][]string, len(p.notes))
	for pl, n := range p.notes {
		out[pl] = []string{n}
	}
	return out
}

func isFinderNotFound(err error) bool {
	var nf *find.NotFoundError
	return errors.As(err, &nf)
}

// folder returns the folder <dc>/vm/<rel>, creating missing elements
// when create is set.
func (p *Provider) folder(ctx context.Context, c *vim25.Client, dc, rel string, create bool) (*object.Folder, error) {
	full := dc + "/vm"
	if rel = trimSlash(rel); rel != "" {
		full += "/" + rel
	}
	ref, err := p.findPath(ctx, c, "folder", full)
	if err == nil {
		f, ok := ref.(*object.Folder)
		if !ok {
			return nil, notFound("folder (not a "+ref.Reference().Type+")", full)
		}
		f.InventoryPath = full
		return f, nil
	}
	if !create || !errors.Is(err, pool.ErrNotFound) {
		return nil, err
	}
	// One creation at a time: concurrent creators would only collide on
	// DuplicateName (handled), but govmomi's simulator races on it.
	p.folderMu.Lock()
	defer p.folderMu.Unlock()
	return createFolders(ctx, c, dc, rel, p.logger.Info)
}

// createFolders walks rel below <dc>/vm and creates what is missing.
// Concurrent creators are fine: DuplicateName means someone else won.
func createFolders(ctx context.Context, c *vim25.Client, dc, rel string, logf func(string, ...any)) (*object.Folder, error) {
	ref, err := findPath(ctx, c, "folder", dc+"/vm")
	if err != nil {
		return nil, err
	}
	cur, ok := ref.(*object.Folder)
	if !ok {
		return nil, notFound("vm folder", dc+"/vm")
	}
	si := object.NewSearchIndex(c)
	curPath := dc + "/vm"
	for _, name := range strings.Split(rel, "/") {
		if name == "" || name == "." {
			continue
		}
		curPath = path.Join(curPath, name)
		child, err := si.FindChild(ctx, cur, name)
		if err != nil {
			return nil, err
		}
		if child == nil {
			nf, err := cur.CreateFolder(ctx, name)
			switch {
			case err == nil:
				logf("created folder", "path", curPath)
				child = nf
			case fault.Is(err, &types.DuplicateName{}):
				if child, err = si.FindChild(ctx, cur, name); err != nil || child == nil {
					return nil, fmt.Errorf("folder %s: created concurrently but not found: %v", curPath, err)
				}
			default:
				return nil, err
			}
		}
		if cur, ok = child.(*object.Folder); !ok {
			return nil, notFound("folder (not a "+child.Reference().Type+")", curPath)
		}
	}
	cur.InventoryPath = curPath
	return cur, nil
}

// validName rejects names that cannot be VM names or path elements.
func validName(name string) error {
	if name == "" || strings.ContainsAny(name, "/\\%") || len(name) > 80 {
		return fmt.Errorf("vsphere: invalid VM name %q", name)
	}
	return nil
}

// In simulator mode, govmomi's simulator races (a data race, found by
// -race) between a clone task adding a VM to a folder and a container view
// walking the inventory. Clone tasks share simViews; resolving a clone's
// placement, which may create a container view, takes it alone. A real
// vCenter is not throttled.

// simLockViews takes simViews alone in simulator mode and returns its unlock.
func (p *Provider) simLockViews() func() {
	if !p.simulated() {
		return func() {}
	}
	p.simViews.Lock()
	return p.simViews.Unlock
}

// simLockClones shares simViews in simulator mode and returns its unlock.
func (p *Provider) simLockClones() func() {
	if !p.simulated() {
		return func() {}
	}
	p.simViews.RLock()
	return p.simViews.RUnlock
}
