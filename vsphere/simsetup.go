package vsphere

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// simSourceVM is the model VM cloned into every template.
const simSourceVM = "DC0_C0_RP0_VM0"

// simBaseSnapshot is the snapshot each simulated template gets, so that
// linked clones take the same path as on a prepared real template.
const simBaseSnapshot = "vmpooler-base"

// simSetup creates the pools' inventory in a fresh model.
type simSetup struct {
	c      *vim25.Client
	dc     string
	pools  []pool.PoolConfig
	dir    string
	logger *slog.Logger

	f      *find.Finder
	dcObj  *object.Datacenter
	dcPath string
}

func (s *simSetup) run(ctx context.Context) error {
	if err := s.datacenter(ctx); err != nil {
		return err
	}
	seen := map[string]bool{}
	once := func(kind, v string) bool {
		if v == "" || seen[kind+"\x00"+v] {
			return false
		}
		seen[kind+"\x00"+v] = true
		return true
	}
	for _, p := range s.pools {
		if p.Datacenter != "" && trimSlash(p.Datacenter) != s.dcPath {
			return fmt.Errorf("pool %s: datacenter %q: the simulator has one datacenter, %q", p.Name, p.Datacenter, s.dcPath)
		}
		if once("ds", p.Datastore) {
			if err := s.datastore(ctx, p.Datastore); err != nil {
				return fmt.Errorf("pool %s: datastore %s: %w", p.Name, p.Datastore, err)
			}
		}
		if once("target", p.CloneTarget) {
			if err := s.cloneTarget(ctx, p.CloneTarget); err != nil {
				return fmt.Errorf("pool %s: clone target %s: %w", p.Name, p.CloneTarget, err)
			}
		}
		if once("template", trimSlash(p.Template)) {
			if err := s.template(ctx, trimSlash(p.Template), p.Datastore); err != nil {
				return fmt.Errorf("pool %s: template %s: %w", p.Name, p.Template, err)
			}
		}
		if once("folder", trimSlash(p.Folder)) {
			if _, err := createFolders(ctx, s.c, s.dcPath, trimSlash(p.Folder), s.logger.Debug); err != nil {
				return fmt.Errorf("pool %s: folder %s: %w", p.Name, p.Folder, err)
			}
		}
	}
	return nil
}

// datacenter renames the model's DC0 to the configured name.
func (s *simSetup) datacenter(ctx context.Context) error {
	s.f = find.NewFinder(s.c)
	dc, err := s.f.DefaultDatacenter(ctx)
	if err != nil {
		return err
	}
	s.dcPath = trimSlash(dc.InventoryPath)
	if name := trimSlash(s.dc); name != "" && name != s.dcPath {
		if strings.Contains(name, "/") {
			return fmt.Errorf("datacenter %q: the simulator supports a plain name only", s.dc)
		}
		task, err := dc.Rename(ctx, name)
		if err == nil {
			err = task.Wait(ctx)
		}
		if err != nil {
			return fmt.Errorf("rename the datacenter to %s: %w", name, err)
		}
		s.dcPath = name
		if dc, err = s.f.Datacenter(ctx, name); err != nil {
			return err
		}
	}
	s.f.SetDatacenter(dc)
	s.dcObj = dc
	return nil
}

// datastore adds a local datastore of that name to every host.
func (s *simSetup) datastore(ctx context.Context, name string) error {
	if _, err := s.f.Datastore(ctx, name); err == nil {
		return nil
	}
	dir := filepath.Join(s.dir, strings.NewReplacer("/", "_", " ", "_").Replace(name))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	v, err := view.NewManager(s.c).CreateContainerView(ctx, s.c.ServiceContent.RootFolder, []string{"HostSystem"}, true)
	if err != nil {
		return err
	}
	defer func() { _ = v.Destroy(context.WithoutCancel(ctx)) }()
	hosts, err := v.Find(ctx, []string{"HostSystem"}, nil)
	if err != nil {
		return err
	}
	for _, ref := range hosts {
		dss, err := object.NewHostSystem(s.c, ref).ConfigManager().DatastoreSystem(ctx)
		if err != nil {
			return err
		}
		if _, err := dss.CreateLocalDatastore(ctx, name, dir); err != nil {
			return err
		}
	}
	s.logger.Debug("created datastore", "name", name)
	return nil
}

// cloneTarget creates a missing target as a resource pool of the first
// cluster.
func (s *simSetup) cloneTarget(ctx context.Context, target string) error {
	if _, err := resourcePool(ctx, s.f, s.dcObj, target); err == nil {
		return nil
	}
	root, err := resourcePool(ctx, s.f, s.dcObj, "")
	if err != nil {
		return err
	}
	if _, err := root.Create(ctx, path.Base(target), types.DefaultResourceConfigSpec()); err != nil {
		return err
	}
	s.logger.Debug("created resource pool", "name", target)
	return nil
}

// template clones the source VM to <dc>/vm/<rel>, snapshots it and marks
// it as a template.
func (s *simSetup) template(ctx context.Context, rel, datastore string) error {
	if _, err := findPath(ctx, s.c, "template", s.dcPath+"/vm/"+rel); err == nil {
		return nil
	}
	folder, err := createFolders(ctx, s.c, s.dcPath, path.Dir(rel), s.logger.Debug)
	if err != nil {
		return err
	}
	src, err := s.f.VirtualMachine(ctx, simSourceVM)
	if err != nil {
		return err
	}
	rp, err := resourcePool(ctx, s.f, s.dcObj, "")
	if err != nil {
		return err
	}
	rpRef := rp.Reference()
	spec := types.VirtualMachineCloneSpec{Location: types.VirtualMachineRelocateSpec{Pool: &rpRef}}
	if datastore != "" {
		ds, err := s.f.Datastore(ctx, datastore)
		if err != nil {
			return err
		}
		dsRef := ds.Reference()
		spec.Location.Datastore = &dsRef
	}
	task, err := src.Clone(ctx, folder, path.Base(rel), spec)
	if err != nil {
		return err
	}
	info, err := task.WaitForResult(ctx)
	if err != nil {
		return err
	}
	vm := object.NewVirtualMachine(s.c, info.Result.(types.ManagedObjectReference))
	if task, err = vm.CreateSnapshot(ctx, simBaseSnapshot, "vmpooler simulator", false, false); err == nil {
		err = task.Wait(ctx)
	}
	if err != nil {
		return err
	}
	if err := vm.MarkAsTemplate(ctx); err != nil {
		return err
	}
	s.logger.Debug("created template", "path", s.dcPath+"/vm/"+rel)
	return nil
}
