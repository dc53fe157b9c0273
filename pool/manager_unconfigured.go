package pool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/store"
)

// unconfigured is the manager's state for the folders of pools no longer
// configured (purge_unconfigured_resources). Pass-owned (passMu).
type unconfigured struct {
	last   time.Time       // last check
	due    bool            // a reload asks for a check at the next pass
	logged map[string]bool // VMs already logged as left alone
}

// reconcileUnconfigured remembers the configured pools' folders in the
// store, then looks into the remembered folders of pools that are no
// longer configured (removed while the pooler was stopped, or retired and
// drained): a VM there carrying this pooler's own marker is destroyed
// when purge_unconfigured_resources is on and logged once otherwise; no
// other VM is ever touched. A folder with nothing of ours left is
// forgotten. It runs at the first pass, after each reload and every
// PurgeInterval.
func (m *Manager) reconcileUnconfigured(ctx context.Context, now time.Time) error {
	u := &m.unconf
	if !u.due && !u.last.IsZero() && now.Sub(u.last) < m.PurgeInterval {
		return nil
	}
	u.due, u.last = false, now
	if u.logged == nil {
		u.logged = make(map[string]bool)
	}
	current := make(map[string]store.PoolFolder, len(m.Config.Pools))
	inUse := make(map[store.PoolFolder]bool, len(m.Config.Pools))
	for _, pc := range m.Config.Pools {
		f := store.PoolFolder{Datacenter: pc.Datacenter, Folder: pc.Folder}
		current[pc.Name] = f
		inUse[cleanPoolFolder(f)] = true
	}
	if err := m.Store.RememberFolders(current); err != nil {
		return fmt.Errorf("remembering pool folders: %w", err)
	}
	all, err := m.Store.PoolFolders()
	if err != nil {
		return fmt.Errorf("reading pool folders: %w", err)
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(all)) {
		f := all[name]
		if _, ok := current[name]; ok {
			continue
		}
		if inUse[cleanPoolFolder(f)] || m.instance == "" {
			// A configured pool's folder now: its orphans are its pool's.
			errs = append(errs, m.Store.ForgetFolder(name))
			continue
		}
		errs = append(errs, m.unconfiguredFolder(ctx, name, f))
	}
	return errors.Join(errs...)
}

func cleanPoolFolder(f store.PoolFolder) store.PoolFolder {
	f.Folder = strings.Trim(f.Folder, "/")
	return f
}

// unconfiguredFolder handles the folder f of the removed pool name.
func (m *Manager) unconfiguredFolder(ctx context.Context, name string, f store.PoolFolder) error {
	lctx, cancel := context.WithTimeout(ctx, m.CallTimeout)
	vms, err := m.Provider.List(lctx, f.Datacenter, f.Folder)
	cancel()
	if errors.Is(err, ErrNotFound) {
		return m.Store.ForgetFolder(name)
	} else if err != nil {
		return fmt.Errorf("listing folder %s of unconfigured pool %s: %w", f.Folder, name, err)
	}
	var mine []VMInfo
	for _, vm := range vms {
		if vm.Owner.Instance == m.instance {
			mine = append(mine, vm)
		}
	}
	if len(mine) == 0 {
		return m.Store.ForgetFolder(name)
	}
	if !m.Config.PurgeUnconfiguredResources {
		for _, vm := range mine {
			if !m.unconf.logged[vm.Name] {
				m.unconf.logged[vm.Name] = true
				m.Logger.Warn("vm of a pool no longer configured left alone (purge_unconfigured_resources = true destroys such vms)",
					"pool", name, "folder", f.Folder, "vm", vm.Name)
			}
		}
		return nil
	}
	var errs []error
	for _, vm := range mine {
		loc := Location{Pool: name, Name: vm.Name, Folder: f.Folder, Datacenter: f.Datacenter, Owners: []string{m.instance}}
		dctx, cancel := context.WithTimeout(ctx, m.CallTimeout)
		err := m.Provider.Destroy(dctx, loc)
		cancel()
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("purging %s of unconfigured pool %s: %w", vm.Name, name, err))
			continue
		}
		m.Logger.Info("vm of a pool no longer configured destroyed (purge_unconfigured_resources)",
			"pool", name, "folder", f.Folder, "vm", vm.Name)
		if rec, err := m.Store.Get(vm.Name); err == nil && rec.Pool == name && rec.State != store.StateDestroyed {
			errs = append(errs, m.Store.Destroy(vm.Name, "purged: pool "+name+" is no longer configured"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return m.Store.ForgetFolder(name) // nothing of ours is left in it
}
