package vsphere

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// target is a place clones can go: a cluster or a standalone host (the
// compute resource around it).
type target struct {
	name    string
	cluster bool
	pool    types.ManagedObjectReference // its root resource pool
}

func (t target) String() string {
	if t.cluster {
		return t.name + " (cluster)"
	}
	return t.name + " (standalone host)"
}

// targets lists the datacenter's clusters and standalone hosts, in folders
// or not, with one container view and one retrieve.
func targets(ctx context.Context, c *vim25.Client, dc *object.Datacenter) ([]target, error) {
	folders, err := dc.Folders(ctx)
	if err != nil {
		return nil, err
	}
	v, err := view.NewManager(c).CreateContainerView(ctx, folders.HostFolder.Reference(),
		[]string{"ComputeResource"}, true)
	if err != nil {
		return nil, err
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	var crs []mo.ComputeResource
	if err := v.Retrieve(ctx, []string{"ComputeResource"}, []string{"name", "resourcePool"}, &crs); err != nil {
		return nil, err
	}
	out := make([]target, 0, len(crs))
	for _, cr := range crs {
		if cr.ResourcePool == nil {
			continue
		}
		out = append(out, target{name: cr.Name, cluster: cr.Self.Type == "ClusterComputeResource", pool: *cr.ResourcePool})
	}
	slices.SortFunc(out, func(a, b target) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// errTargetRequired says that a datacenter offers several places to
// clone to, and which.
func errTargetRequired(dc string, ts []target) error {
	names := make([]string, len(ts))
	for i, t := range ts {
		names[i] = t.String()
	}
	return fmt.Errorf("clone_target is required: datacenter %s has %d places to clone to: %s (name one; to spread clones over standalone hosts, make a pool per host)",
		dc, len(ts), strings.Join(names, ", "))
}

// resourcePool resolves a clone target: a cluster or standalone host by
// path or by name (its root resource pool), or a resource pool by path or
// name. Empty means the datacenter's only cluster or host; with several,
// it is an error that lists them.
func resourcePool(ctx context.Context, f *find.Finder, dc *object.Datacenter, name string) (*object.ResourcePool, error) {
	c := dc.Client()
	if name == "" {
		ts, err := targets(ctx, c, dc)
		switch {
		case err != nil:
			return nil, err
		case len(ts) == 0:
			return nil, fmt.Errorf("datacenter %s has no cluster or host to clone onto: %w", dc.InventoryPath, pool.ErrNotFound)
		case len(ts) > 1:
			return nil, errTargetRequired(dc.InventoryPath, ts)
		}
		return object.NewResourcePool(c, ts[0].pool), nil
	}
	cr, err := f.ComputeResource(ctx, name)
	if err == nil {
		return cr.ResourcePool(ctx)
	}
	if !isFinderNotFound(err) {
		return nil, err
	}
	ts, err := targets(ctx, c, dc) // a cluster or host inside a folder, by name
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.name == name {
			return object.NewResourcePool(c, t.pool), nil
		}
	}
	for _, p := range []string{name, "*/Resources/" + name, "*/Resources/*/" + name} {
		rp, err := f.ResourcePool(ctx, p)
		if err == nil {
			return rp, nil
		}
		if !isFinderNotFound(err) {
			return nil, err
		}
	}
	return nil, notFound("clone target", name)
}

// datastore finds a datastore by name; a datastore cluster (StoragePod)
// of that name gets an error naming its datastores.
func datastore(ctx context.Context, f *find.Finder, name string) (*object.Datastore, error) {
	ds, err := f.Datastore(ctx, name)
	if err == nil || !isFinderNotFound(err) {
		return ds, err
	}
	pod, perr := f.DatastoreCluster(ctx, name)
	if perr != nil {
		return nil, err
	}
	var mpod mo.StoragePod
	var members []string
	if pod.Properties(ctx, pod.Reference(), []string{"childEntity"}, &mpod) == nil {
		for _, ref := range mpod.ChildEntity {
			var mds mo.Datastore
			if object.NewDatastore(pod.Client(), ref).Properties(ctx, ref, []string{"name"}, &mds) == nil {
				members = append(members, mds.Name)
			}
		}
	}
	return nil, fmt.Errorf("datastore %q is a datastore cluster (StoragePod), which vmpooler does not place into (Storage DRS recommendations are not applied): name one of its datastores (%s)",
		name, strings.Join(members, ", "))
}

// checkPlacement refuses, at start, pools with no clone_target in a
// datacenter that has several clusters or standalone hosts.
func (p *Provider) checkPlacement(ctx context.Context) error {
	c := p.vc()
	f := find.NewFinder(c)
	var errs []error
	seen := map[string]bool{}
	for _, pc := range p.pools {
		if pc.CloneTarget != "" {
			continue
		}
		dcPath, err := p.datacenter(pc.Datacenter)
		if err != nil || seen[dcPath] {
			continue
		}
		seen[dcPath] = true
		dc, err := f.Datacenter(ctx, dcPath)
		if err != nil {
			errs = append(errs, fmt.Errorf("pool %s: datacenter %s: %w", pc.Name, dcPath, err))
			continue
		}
		ts, err := targets(ctx, c, dc)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("pool %s: list clusters and hosts: %w", pc.Name, err))
		case len(ts) > 1:
			errs = append(errs, fmt.Errorf("pool %s (and every pool of datacenter %s without one): %w", pc.Name, dcPath, errTargetRequired(dcPath, ts)))
		case len(ts) == 1:
			p.setDefaultTarget(dcPath, ts[0].pool)
		}
	}
	return errors.Join(errs...)
}

// resolveDatacenters maps every datacenter the configuration names to its
// inventory path: a path as given ("F0/DC0"), or a bare name found
// anywhere in the inventory when exactly one datacenter has it (E8: a
// datacenter inside a folder, configured as "DC0").
func (p *Provider) resolveDatacenters(ctx context.Context) error {
	names := []string{trimSlash(p.cfg.Datacenter)}
	for _, pc := range p.pools {
		names = append(names, trimSlash(pc.Datacenter))
	}
	c := p.vc()
	paths := make(map[string]string)
	var all []mo.Datacenter // read once, when a name is not a path
	for _, name := range names {
		if name == "" || paths[name] != "" {
			continue
		}
		if ref, err := findPath(ctx, c, "datacenter", name); err == nil && ref.Reference().Type == "Datacenter" {
			paths[name] = name
			continue
		} else if err != nil && !errors.Is(err, pool.ErrNotFound) {
			return wrapErr("find datacenter "+name, err)
		}
		if all == nil {
			v, err := view.NewManager(c).CreateContainerView(ctx, c.ServiceContent.RootFolder, []string{"Datacenter"}, true)
			if err != nil {
				return wrapErr("list datacenters", err)
			}
			err = v.Retrieve(ctx, []string{"Datacenter"}, []string{"name"}, &all)
			_ = v.Destroy(context.WithoutCancel(ctx))
			if err != nil {
				return wrapErr("list datacenters", err)
			}
		}
		var found []string
		for _, dc := range all {
			if dc.Name != name {
				continue
			}
			obj, err := find.NewFinder(c).ObjectReference(ctx, dc.Self)
			if err != nil {
				return wrapErr("datacenter "+name, err)
			}
			found = append(found, trimSlash(obj.(*object.Datacenter).InventoryPath))
		}
		switch len(found) {
		case 0:
			return fmt.Errorf("vsphere: datacenter %q: not found, or not visible to %s: %w", name, p.cfg.Username, pool.ErrNotFound)
		case 1:
			paths[name] = found[0]
			if found[0] != name {
				p.logger.Info("datacenter found inside a folder", "datacenter", name, "path", found[0])
			}
		default:
			return fmt.Errorf("vsphere: datacenter %q: %d datacenters have that name (%s): give its path", name, len(found), strings.Join(found, ", "))
		}
	}
	p.dcPaths = paths
	return nil
}

// defaultTarget returns the resource pool clones without clone_target go
// to in datacenter dc, as found at start (or by an earlier clone), so that
// a clone does not list the datacenter's clusters and hosts each time.
func (p *Provider) defaultTarget(dc string) (types.ManagedObjectReference, bool) {
	p.targetMu.Lock()
	defer p.targetMu.Unlock()
	ref, ok := p.defaultRP[dc]
	return ref, ok
}

// setDefaultTarget records (or, with a zero ref, forgets) dc's default
// resource pool.
func (p *Provider) setDefaultTarget(dc string, ref types.ManagedObjectReference) {
	p.targetMu.Lock()
	defer p.targetMu.Unlock()
	if p.defaultRP == nil {
		p.defaultRP = make(map[string]types.ManagedObjectReference)
	}
	if ref.Value == "" {
		delete(p.defaultRP, dc)
	} else {
		p.defaultRP[dc] = ref
	}
}
