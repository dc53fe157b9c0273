package pool

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"time"
)

// PoolHealth is what the manager knows of a pool beyond the store's counts,
// for /status and /metrics.
type PoolHealth struct {
	// Foreign lists the inventory paths of the VMs in the pool's folder that
	// this pooler did not create, as of the last pass (sorted). They are
	// never powered off or destroyed.
	Foreign []string
	// ReadyFailure is why the pool's new VMs keep failing their ready check
	// ("" while they pass); ReadyFailedPasses counts the passes in a row
	// that failed one, and Refill is when the next clone may start.
	ReadyFailure      string
	ReadyFailedPasses int
	Refill            time.Time
	// CloneFailure is the last clone error while clones keep failing (a
	// missing template, a missing privilege, vCenter out of capacity);
	// CloneFailures counts them in a row, and CloneRetry is when refills
	// resume.
	CloneFailure  string
	CloneFailures int
	CloneRetry    time.Time
	// Notes are the provider's remarks on the pool (NoteProvider).
	Notes []string
}

// NoteProvider is implemented by providers with something to tell the
// operator about a pool that is not an error, such as full clones made
// where linked clones were asked for. Notes returns pool → remarks.
type NoteProvider interface {
	Notes() map[string][]string
}

// poolHealth is the manager's per-pool record behind PoolHealth (m.mu).
type poolHealth struct {
	foreign map[string]string // name → path, as of the last pass
}

// Health returns every configured pool's PoolHealth.
func (m *Manager) Health() map[string]PoolHealth {
	var notes map[string][]string
	if np, ok := m.Provider.(NoteProvider); ok {
		notes = np.Notes()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]PoolHealth, len(m.Config.Pools))
	for _, pc := range m.Config.Pools {
		var h PoolHealth
		if ph := m.health[pc.Name]; ph != nil && len(ph.foreign) > 0 {
			h.Foreign = slices.Sorted(maps.Values(ph.foreign))
		}
		if b := m.readyBO[pc.Name]; b != nil {
			h.ReadyFailure, h.ReadyFailedPasses, h.Refill = b.lastErr, b.failures, b.next
		}
		if b := m.cloneBO[pc.Name]; b != nil {
			h.CloneFailure, h.CloneFailures, h.CloneRetry = b.lastErr, b.failures, b.next
		}
		h.Notes = notes[pc.Name]
		out[pc.Name] = h
	}
	return out
}

// noteForeign records the foreign VMs a pass found in a pool's folder and
// logs each once, when it is first seen.
func (m *Manager) noteForeign(pc PoolConfig, vms []VMInfo) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ph := m.health[pc.Name]
	if ph == nil {
		ph = &poolHealth{}
		m.health[pc.Name] = ph
	}
	prev := ph.foreign
	ph.foreign = make(map[string]string, len(vms))
	for _, vm := range vms {
		p := vm.Path
		if p == "" {
			p = vmPath(pc, vm.Name)
		}
		ph.foreign[vm.Name] = p
		if _, seen := prev[vm.Name]; seen {
			continue
		}
		why := "it has no vmpooler marker"
		if vm.Owner.Instance != "" {
			why = "its marker names another vmpooler instance (" + vm.Owner.Instance + ", pool " + vm.Owner.Pool + ")"
		}
		m.Logger.Warn("foreign vm in pool folder: not created by this pooler, left alone",
			"pool", pc.Name, "path", p, "why", why, "powered_on", vm.PoweredOn)
	}
}

// vmPath is a VM's inventory path as the config names it.
func vmPath(pc PoolConfig, name string) string {
	parts := []string{"vm", strings.Trim(pc.Folder, "/"), name}
	if dc := strings.Trim(pc.Datacenter, "/"); dc != "" {
		parts = append([]string{dc}, parts...)
	}
	return strings.Join(parts, "/")
}

// readyOutcome updates a pool's ready backoff after a pass: one VM that
// proved ready clears it; otherwise a pass in which a VM failed its ready
// check doubles the pause before the next refill (per failed pass, not per
// failed VM). It logs only transitions: failing, and passing again.
func (m *Manager) readyOutcome(pool string, ok int, fail string, now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.readyBO[pool]
	switch {
	case ok > 0 && b != nil:
		delete(m.readyBO, pool)
		m.Logger.Info("new vms pass their ready check again; refilling", "pool", pool,
			"failed_passes", b.failures)
	case ok == 0 && fail != "":
		if b == nil {
			b = &poolBackoff{}
			m.readyBO[pool] = b
		}
		delay, _ := b.failed(now, errors.New(fail), positiveDur(m.ReadyBackoffMin, time.Minute), positiveDur(m.ReadyBackoffMax, time.Hour))
		if b.failures == 1 {
			m.Logger.Warn("new vms fail their ready check; cloning one at a time, with a doubling pause",
				"pool", pool, "reason", fail, "next_clone_in", delay)
		}
	}
}

// readyLimit caps a pool's refill while its ready checks fail: nothing
// until the pause is over, then one clone at a time (a probe) until a VM
// proves ready. pending is the pool's pending VM count.
func (m *Manager) readyLimit(pool string, deficit, pending int, now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.readyBO[pool]
	switch {
	case b == nil || deficit <= 0:
		return deficit
	case now.Before(b.next):
		return 0
	}
	return min(deficit, max(1-pending, 0))
}

// positiveDur returns d, or def when d is not positive.
func positiveDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
