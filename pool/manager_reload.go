package pool

import (
	"slices"
	"time"

	"github.com/vmpooler/vmpooler/store"
)

// SetConfig puts a new configuration in force from the next pass (a
// reload): sizes, templates (VMs of the old template are drained as a
// /config/pooltemplate change drains them), timeouts, TTLs, lifetimes and
// new pools. A pool that is no longer configured is retired: the manager
// keeps it at size 0, so its pending and ready VMs are destroyed, while
// its running VMs live out their lifetime; once it holds no live VM it is
// forgotten. Its runtime overrides are dropped, so a size override cannot
// keep it filling. A pass in progress finishes with the old configuration.
//
// task_limit and ondemand_clone_limit apply to new clones at once (clones
// in flight finish under the old limit); snapshot and disk jobs keep the
// limit of the start.
func (m *Manager) SetConfig(cfg *Config) {
	m.passMu.Lock()
	defer m.passMu.Unlock()
	next := *cfg
	next.Pools = slices.Clone(cfg.Pools)
	next.Defaults()
	counts := m.Store.Counts()
	if m.retired == nil {
		m.retired = make(map[string]bool)
	}
	for _, p := range m.Config.Pools {
		if _, ok := cfg.Pool(p.Name); ok {
			delete(m.retired, p.Name)
			continue
		}
		if !m.retired[p.Name] {
			m.Logger.Info("pool removed from the configuration: its ready and pending VMs will be destroyed, its running VMs live out their lifetime",
				"pool", p.Name, "ready", counts[p.Name].Ready, "pending", counts[p.Name].Pending, "running", counts[p.Name].Running)
			if err := m.Store.PutOverride(p.Name, store.Override{}); err != nil {
				m.Logger.Error("dropping the runtime overrides of a removed pool", "pool", p.Name, "err", err)
			}
		}
		m.retired[p.Name] = true
		p.Size = 0
		next.Pools = append(next.Pools, p)
	}
	if m.cloneSem != nil && (next.TaskLimit != m.Config.TaskLimit || next.OndemandCloneLimit != m.Config.OndemandCloneLimit) {
		// Clones in flight release the semaphore they were started with.
		m.cloneSem = make(chan struct{}, next.TaskLimit)
		m.odSem = make(chan struct{}, next.OndemandCloneLimit)
	}
	m.setConfig(&next)
	m.unconf.due = true // look into the folders of removed pools
	m.Kick()
}

// setConfig replaces the configuration; Health reads it under m.mu. The
// caller holds passMu.
func (m *Manager) setConfig(c *Config) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.Config = c
}

// pruneRetired forgets retired pools that hold no live VM any more.
// The caller holds passMu.
func (m *Manager) pruneRetired() {
	if len(m.retired) == 0 {
		return
	}
	counts := m.Store.Counts()
	var kept []PoolConfig
	for _, p := range m.Config.Pools {
		if c := counts[p.Name]; m.retired[p.Name] && c.Pending+c.Ready+c.Running+c.Completed == 0 {
			delete(m.retired, p.Name)
			delete(m.checked, p.Name)
			delete(m.annotated, p.Name)
			delete(m.backoff, p.Name)
			m.mu.Lock()
			delete(m.readyBO, p.Name)
			delete(m.cloneBO, p.Name)
			delete(m.health, p.Name)
			m.mu.Unlock()
			m.Logger.Info("removed pool drained; forgotten", "pool", p.Name)
			continue
		}
		kept = append(kept, p)
	}
	if len(kept) != len(m.Config.Pools) {
		next := *m.Config
		next.Pools = kept
		m.setConfig(&next)
	}
}

// loopDelay is check_loop_delay as a duration, read under passMu so that
// SetConfig may change it.
func (m *Manager) loopDelay() time.Duration {
	m.passMu.Lock()
	defer m.passMu.Unlock()
	return time.Duration(m.Config.CheckLoopDelay) * time.Second
}
