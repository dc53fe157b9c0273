package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// poolPass is what one pass learned about one pool: its effective
// settings and counts, used to refill it and to fill ondemand requests.
type poolPass struct {
	cfg         PoolConfig
	reachable   bool // the inventory was listed this pass
	size        int
	template    string
	cloneTarget string
	deficit     int                 // pooled VMs to clone
	odPending   map[string]int      // request id → pending VMs (clones in flight included)
	odHosts     map[string][]string // request id → pending hostnames
}

// poolRun is the working state of one pool during one pass.
type poolRun struct {
	m         *Manager
	ctx       context.Context
	pass      *poolPass
	now       time.Time
	inv       map[string]VMInfo
	flying    map[string]bool
	liveReqs  map[string]bool
	checked   map[string]time.Time // last check of each ready VM, carried over
	noted     map[string]bool      // running VMs annotated, carried over
	nextNoted map[string]bool

	checks   []readyCheck
	destroys []store.VM // completed VMs present in the inventory
	orphans  []string   // this pooler's VMs (by marker) that no live record claims
	foreign  []VMInfo   // VMs this pooler did not make: never touched
	annotate []store.VM
	ready    []store.VM // pooled ready VMs still ready
	pending  []store.VM // pooled pending VMs still pending
	problems []error

	readyOK   int    // VMs that proved ready this pass (see proved)
	readyFail string // why a VM failed its ready check this pass, if one did
}

// readyCheck is one VM to run the provider's ready check on.
type readyCheck struct {
	vm   store.VM
	info VMInfo
	ok   bool
	why  string
	err  error
}

// poolFetch is a pool's inventory and store records, read in parallel for
// all pools at the start of a pass. The in-flight clones are noted before
// List, so a pending VM not listed and not in flight really is missing.
type poolFetch struct {
	skip    bool // backing off
	flying  map[string]bool
	infos   []VMInfo
	listErr error
	vms     []store.VM
	err     error // store
}

// fetchPools lists every pool's folder and store records, in parallel.
func (m *Manager) fetchPools(ctx context.Context, now time.Time) []poolFetch {
	pools := m.Config.Pools
	out := make([]poolFetch, len(pools))
	for i, pc := range pools {
		out[i].skip = m.backingOff(pc.Name, now)
	}
	m.parallel(len(pools), func(i int) {
		f, pc := &out[i], pools[i]
		if f.skip {
			return
		}
		f.flying = m.flying()
		lctx, cancel := context.WithTimeout(ctx, m.CallTimeout)
		f.infos, f.listErr = m.Provider.List(lctx, pc.Datacenter, pc.Folder)
		cancel()
		if f.listErr == nil || errors.Is(f.listErr, ErrNotFound) {
			f.vms, f.err = m.Store.ListPool(pc.Name)
		}
	})
	return out
}

// reconcilePool runs the pool's part of a pass.
func (m *Manager) reconcilePool(ctx context.Context, pc PoolConfig, f *poolFetch, ov store.Override, liveReqs map[string]bool, now time.Time, waiting int) (*poolPass, error) {
	eff := pc.WithOverride(ov)
	p := &poolPass{cfg: pc, size: eff.Size, template: eff.Template, cloneTarget: eff.CloneTarget,
		odPending: make(map[string]int), odHosts: make(map[string][]string)}
	p.size += waiting // VMs waiting checkouts ask for, beyond the size
	if errors.Is(f.listErr, ErrNotFound) && f.err == nil && len(f.vms) == 0 {
		// A pool folder that does not exist yet holds no VMs; the first
		// clone may create it. With live records, it is a fault: back off
		// rather than call every VM vanished.
		f.listErr, f.infos = nil, nil
	}
	if f.skip {
		return p, nil
	} else if f.listErr != nil {
		if ctx.Err() == nil {
			m.listFailed(pc.Name, now, f.listErr)
		}
		return p, nil
	}
	m.listOK(pc.Name)
	if f.err != nil {
		return p, fmt.Errorf("pool %s: %w", pc.Name, f.err)
	}
	p.reachable = true
	r := &poolRun{m: m, ctx: ctx, pass: p, now: now, liveReqs: liveReqs,
		flying: f.flying, checked: m.checked[pc.Name], noted: m.annotated[pc.Name]}
	r.nextNoted = make(map[string]bool)
	if r.checked == nil {
		r.checked = make(map[string]time.Time)
	}
	infos, vms := f.infos, f.vms
	r.checks = make([]readyCheck, 0, len(vms))
	r.ready = make([]store.VM, 0, len(vms))
	r.inv = make(map[string]VMInfo, len(infos))
	for _, info := range infos {
		r.inv[info.Name] = info
	}
	r.classify(vms)
	r.findOrphans(vms)
	r.runChecks()
	r.removeExcess()
	r.runDestroys()
	m.noteForeign(pc, r.foreign)
	m.readyOutcome(pc.Name, r.readyOK, r.readyFail, now)
	p.deficit = m.readyLimit(pc.Name, p.size-len(r.ready)-len(r.pending), len(r.pending), now)
	next := make(map[string]time.Time, len(r.ready))
	for _, vm := range r.ready {
		if t, ok := r.checked[vm.Hostname]; ok {
			next[vm.Hostname] = t
		}
	}
	m.checked[pc.Name] = next
	m.annotated[pc.Name] = r.nextNoted
	return p, errors.Join(r.problems...)
}

// classify decides what to do with each live VM of the pool.
func (r *poolRun) classify(vms []store.VM) {
	for _, vm := range vms {
		switch vm.State {
		case store.StatePending:
			r.classifyPending(vm)
		case store.StateReady:
			r.classifyReady(vm)
		case store.StateRunning:
			r.classifyRunning(vm)
		case store.StateCompleted:
			r.classifyCompleted(vm)
		}
	}
}

func (r *poolRun) classifyPending(vm store.VM) {
	timeout := r.m.poolTimeout(r.pass.cfg)
	switch {
	case vm.RequestID != "" && !r.liveReqs[vm.RequestID]:
		r.fail(vm, "ondemand", fmt.Sprintf("ondemand request %s is no longer pending", vm.RequestID))
		return
	case vm.RequestID == "" && r.stale(vm) != "":
		r.fail(vm, "stale", r.stale(vm))
		return
	case r.flying[vm.Hostname]:
		if r.now.Sub(vm.Started) > timeout {
			r.fail(vm, "clone_timeout", "clone not finished after "+fmtMinutes(timeout))
			return
		}
		r.keepPending(vm)
		return
	}
	info, ok := r.inv[vm.Hostname]
	if !ok {
		reason := "vanished from vSphere"
		if vm.Cloned.IsZero() {
			reason = "clone interrupted: not found in vSphere"
		}
		r.vanished(vm, reason)
		return
	}
	r.checks = append(r.checks, readyCheck{vm: vm, info: info})
}

// stale says why a pooled VM no longer matches its pool ("" if it does):
// a template or clone_target override drains the VMs built the old way,
// as upstream does.
func (r *poolRun) stale(vm store.VM) string {
	switch {
	case vm.Template != "" && vm.Template != r.pass.template:
		return "template changed to " + r.pass.template
	case vm.CloneTarget != r.pass.cloneTarget:
		return fmt.Sprintf("clone_target changed to %q", r.pass.cloneTarget)
	}
	return ""
}

// keepPending counts a VM that stays pending.
func (r *poolRun) keepPending(vm store.VM) {
	if vm.RequestID == "" {
		r.pending = append(r.pending, vm)
		return
	}
	r.pass.odPending[vm.RequestID]++
	r.pass.odHosts[vm.RequestID] = append(r.pass.odHosts[vm.RequestID], vm.Hostname)
}

func (r *poolRun) classifyReady(vm store.VM) {
	if _, ok := r.inv[vm.Hostname]; !ok {
		r.vanished(vm, "vanished from vSphere")
		return
	}
	if ttl := r.m.poolReadyTTL(r.pass.cfg); r.now.Sub(vm.Ready) > ttl {
		r.fail(vm, "ready_ttl", "ready_ttl of "+fmtMinutes(ttl)+" expired")
		return
	}
	if why := r.stale(vm); why != "" {
		r.fail(vm, "stale", why)
		return
	}
	every := Minutes(r.m.Config.VMCheckTime)
	if last, ok := r.checked[vm.Hostname]; ok && r.now.Sub(last) < every {
		r.ready = append(r.ready, vm)
		return
	}
	r.checks = append(r.checks, readyCheck{vm: vm, info: r.inv[vm.Hostname]})
}

func (r *poolRun) classifyRunning(vm store.VM) {
	if _, ok := r.inv[vm.Hostname]; !ok {
		r.vanished(vm, "vanished from vSphere")
		return
	}
	lifetime := r.m.Config.Lifetime(vm.Lifetime)
	if lifetime > 0 && !vm.CheckedOut.IsZero() && int(r.now.Sub(vm.CheckedOut)/time.Hour) >= lifetime {
		r.fail(vm, "lifetime", fmt.Sprintf("lifetime of %dh expired", lifetime))
		return
	}
	if r.noted[vm.Hostname] {
		r.nextNoted[vm.Hostname] = true
	} else {
		r.annotate = append(r.annotate, vm)
	}
}

func (r *poolRun) classifyCompleted(vm store.VM) {
	if r.flying[vm.Hostname] {
		return // the clone goroutine cleans up after itself
	}
	if _, ok := r.inv[vm.Hostname]; !ok {
		r.destroyRecord(vm, vm.Reason)
		return
	}
	r.destroys = append(r.destroys, vm)
}

// findOrphans sorts the VMs in the pool's folder that no live record
// claims: those whose marker names this pooler (or an adopted instance)
// are orphans, to destroy; an adopted instance's VM that was checked out
// there is taken over as running; every other VM is foreign and left alone.
func (r *poolRun) findOrphans(vms []store.VM) {
	known := make(map[string]bool, len(vms))
	for _, vm := range vms {
		known[vm.Hostname] = true
	}
	for name, info := range r.inv {
		if known[name] || r.flying[name] {
			continue
		}
		// A live record of another pool sharing the folder is not an orphan.
		vm, err := r.m.Store.Get(name)
		if err == nil && vm.State != store.StateDestroyed {
			continue
		} else if err != nil && errs.ErrorCode(err) != errs.ENOTFOUND {
			r.problems = append(r.problems, err)
			continue
		}
		switch {
		case info.Owner.Instance == r.m.instance && r.m.instance != "":
			r.orphans = append(r.orphans, name)
		case r.m.adopted[info.Owner.Instance]:
			// With a (destroyed) record here it was taken over already and
			// is done; else a VM checked out there becomes running here.
			if err == nil || !r.adoptRunning(info) {
				r.orphans = append(r.orphans, name)
			}
		default:
			r.foreign = append(r.foreign, info)
		}
	}
	slices.Sort(r.orphans)
	slices.SortFunc(r.foreign, func(a, b VMInfo) int { return strings.Compare(a.Name, b.Name) })
}

// adoptRunning takes over a VM of an adopted instance that was checked out
// there (its vmpooler_checkout attribute says when, vmpooler_user by whom):
// it becomes running here and lives out its lifetime. It reports false for
// a VM that was not checked out (ready or pending there: an orphan here).
func (r *poolRun) adoptRunning(info VMInfo) bool {
	at, err := time.Parse(time.RFC3339, info.Attributes["vmpooler_checkout"])
	if err != nil {
		return false
	}
	vm := store.VM{Hostname: info.Name, Pool: r.pass.cfg.Name, Template: r.pass.template,
		CloneTarget: r.pass.cloneTarget, CheckedOut: at, User: info.Attributes["vmpooler_user"], IP: info.IP}
	if err := r.m.Store.AddRunning(vm); err != nil {
		r.problems = append(r.problems, fmt.Errorf("adopting %s: %w", info.Name, err))
		return true // neither destroy it nor call it foreign; try again next pass
	}
	r.m.Logger.Info("vm adopted", "pool", vm.Pool, "hostname", vm.Hostname, "to", store.StateRunning,
		"instance", info.Owner.Instance, "user", vm.User, "checked_out", at)
	return true
}

// runChecks runs the ready checks (and first annotations of running VMs)
// in parallel, then applies the results one by one.
func (r *poolRun) runChecks() {
	m := r.m
	m.parallel(len(r.checks), func(i int) {
		c := &r.checks[i]
		ctx, cancel := context.WithTimeout(r.ctx, m.CheckTimeout)
		defer cancel()
		c.ok, c.why, c.err = m.Provider.Ready(ctx, c.info, r.pass.cfg.ReadyCheck)
		if c.err != nil {
			m.observer().ProviderError("ready", c.err)
		} else if c.ok && c.vm.State == store.StatePending && m.Config.DNSCheckFor(r.pass.cfg) {
			c.ok, c.why = m.resolves(ctx, c.vm.Hostname+"."+r.pass.cfg.Domain, c.info.IP)
		}
	})
	annotated := make([]bool, len(r.annotate))
	m.parallel(len(r.annotate), func(i int) {
		vm := r.annotate[i]
		ctx, cancel := context.WithTimeout(r.ctx, m.CallTimeout)
		defer cancel()
		values := map[string]string{"vmpooler_pool": vm.Pool, "vmpooler_user": vm.User,
			"vmpooler_checkout": vm.CheckedOut.UTC().Format(time.RFC3339)}
		if err := m.Provider.Annotate(ctx, m.location(r.pass.cfg, vm.Hostname, true), values); err != nil {
			m.observer().ProviderError("annotate", err)
			if errors.Is(err, ErrTransient) {
				m.Logger.Warn("annotating vm; trying again next pass", "pool", vm.Pool, "hostname", vm.Hostname, "err", err)
				return
			}
			// Refused (a missing privilege, say): tried once per VM, not every pass.
			m.Logger.Warn("annotating vm failed; not trying again for this vm", "pool", vm.Pool, "hostname", vm.Hostname, "err", err)
		}
		annotated[i] = true
	})
	for i, ok := range annotated {
		if ok {
			r.nextNoted[r.annotate[i].Hostname] = true
		}
	}
	for _, c := range r.checks {
		if c.vm.State == store.StatePending {
			r.applyPending(c)
		} else {
			r.applyReady(c)
		}
	}
}

func (r *poolRun) applyPending(c readyCheck) {
	vm := c.vm
	if c.err == nil && c.ok {
		if r.proved(c) {
			r.readyOK++
		}
		if err := r.m.Store.MarkReady(vm.Hostname, c.info.IP); err != nil {
			r.problems = append(r.problems, fmt.Errorf("marking %s ready: %w", vm.Hostname, err))
			return
		}
		log := r.m.Logger.With("pool", vm.Pool, "hostname", vm.Hostname, "from", store.StatePending)
		if vm.RequestID == "" {
			vm.State, vm.Ready = store.StateReady, r.now
			r.ready = append(r.ready, vm)
			r.checked[vm.Hostname] = r.now
			log.Info("vm ready", "to", store.StateReady, "ip", c.info.IP, "boot_seconds", r.now.Sub(vm.Started).Seconds())
			r.m.observer().VMReady(vm.Pool, r.now.Sub(vm.Started))
			if r.m.OnReady != nil {
				r.m.OnReady()
			}
			return
		}
		r.m.observer().VMReady(vm.Pool, r.now.Sub(vm.Started))
		// An ondemand VM goes to its request, or to completed if the
		// request no longer wants it.
		cur, err := r.m.Store.Get(vm.Hostname)
		if err != nil {
			r.problems = append(r.problems, err)
			return
		}
		log.Info("vm ready", "to", cur.State, "request", vm.RequestID, "ip", c.info.IP, "reason", cur.Reason)
		if cur.State == store.StateCompleted {
			r.destroys = append(r.destroys, cur)
		}
		return
	}
	why := c.why
	if c.err != nil {
		why = c.err.Error()
	}
	if timeout := r.m.poolTimeout(r.pass.cfg); r.now.Sub(vm.Started) > timeout {
		r.readyFailed("failed ready check: " + why + " after " + fmtMinutes(timeout))
		r.fail(vm, "ready_check", "failed ready check: "+why+" after "+fmtMinutes(timeout))
		return
	}
	r.keepPending(vm)
}

func (r *poolRun) applyReady(c readyCheck) {
	why, cause := "", "ready_check"
	switch {
	case c.err != nil && errors.Is(c.err, ErrTransient):
		// vCenter hiccup: keep the VM, check again next pass.
		r.ready = append(r.ready, c.vm)
		return
	case c.err != nil:
		why = "failed ready check: " + c.err.Error()
	case !c.ok:
		why = "failed ready check: " + c.why
	case r.hostnameMismatch(c):
		// Another machine answers for this VM's name (a guest that kept its
		// template's name, or a clash): handing it out would be wrong.
		why, cause = fmt.Sprintf("hostname mismatch: the guest reports %q", c.info.GuestHostname), "hostname_mismatch"
	default:
		if r.proved(c) {
			r.readyOK++
		}
		r.checked[c.vm.Hostname] = r.now
		r.ready = append(r.ready, c.vm)
		return
	}
	r.readyFailed(why)
	r.fail(c.vm, cause, why)
}

// readyFailed notes the pass's first ready-check failure (readyOutcome).
func (r *poolRun) readyFailed(why string) {
	if r.readyFail == "" {
		r.readyFail = why
	}
}

// proved reports whether a VM that passed its ready check counts as the
// pool's new VMs working, which ends a ready backoff: its guest already
// reports the right hostname (or the pool does not check it), or it has
// stayed ready past the minute the hostname check allows.
func (r *poolRun) proved(c readyCheck) bool {
	if c.vm.State == store.StateReady && r.now.Sub(c.vm.Ready) >= time.Minute {
		return true
	}
	if !r.m.Config.HostnameMismatchCheck(r.pass.cfg) {
		return true
	}
	short, _, _ := strings.Cut(c.info.GuestHostname, ".")
	return short != "" && strings.EqualFold(short, c.vm.Hostname)
}

// hostnameMismatch reports whether a ready VM's guest, a minute after it
// became ready (time for the guest to set its name), reports a hostname
// other than the VM's; a fully qualified name counts by its first label.
func (r *poolRun) hostnameMismatch(c readyCheck) bool {
	guest := c.info.GuestHostname
	if guest == "" || !r.m.Config.HostnameMismatchCheck(r.pass.cfg) || r.now.Sub(c.vm.Ready) < time.Minute {
		return false
	}
	short, _, _ := strings.Cut(guest, ".")
	return !strings.EqualFold(short, c.vm.Hostname)
}

// removeExcess recycles pooled VMs beyond the pool's size: pending ones
// first (newest first), then ready ones (oldest first).
func (r *poolRun) removeExcess() {
	excess := len(r.ready) + len(r.pending) - r.pass.size
	if excess <= 0 {
		return
	}
	reason := fmt.Sprintf("pool size is %d", r.pass.size)
	slices.SortFunc(r.pending, func(a, b store.VM) int { return b.Started.Compare(a.Started) })
	for excess > 0 && len(r.pending) > 0 {
		r.fail(r.pending[0], "excess", reason)
		r.pending = r.pending[1:]
		excess--
	}
	slices.SortFunc(r.ready, func(a, b store.VM) int { return a.Ready.Compare(b.Ready) })
	for excess > 0 && len(r.ready) > 0 {
		r.fail(r.ready[0], "excess", reason)
		r.ready = r.ready[1:]
		excess--
	}
}

// fail moves a VM to completed and queues its destruction, only if it is
// still in the state this pass saw: a checkout may have taken a ready VM
// meanwhile, and a VM handed out must not be failed for a ready-state reason.
func (r *poolRun) fail(vm store.VM, cause, reason string) {
	m := r.m
	if err := m.Store.Fail(vm.Hostname, vm.State, reason); err != nil {
		if code := errs.ErrorCode(err); code == errs.ECONFLICT {
			m.Logger.Debug("vm changed state before it could be failed", "pool", vm.Pool, "hostname", vm.Hostname, "reason", reason)
		} else if code != errs.ENOTFOUND {
			r.problems = append(r.problems, fmt.Errorf("failing %s: %w", vm.Hostname, err))
		}
		return
	}
	m.Logger.Info("vm failed", "pool", vm.Pool, "hostname", vm.Hostname, "from", vm.State,
		"to", store.StateCompleted, "reason", reason)
	m.observer().VMFailed(vm.Pool, cause)
	if r.flying[vm.Hostname] {
		m.abandonClone(vm.Hostname)
		return
	}
	if _, ok := r.inv[vm.Hostname]; ok {
		vm.State, vm.Reason = store.StateCompleted, reason
		r.destroys = append(r.destroys, vm)
	} else {
		r.destroyRecord(vm, reason)
	}
}

// destroyRecord moves a VM that is not (or no longer) in vSphere to destroyed.
// vanished marks destroyed the record of a live VM that vSphere does not
// have (any more).
func (r *poolRun) vanished(vm store.VM, reason string) {
	r.m.observer().VMFailed(vm.Pool, "vanished")
	r.destroyRecord(vm, reason)
}

func (r *poolRun) destroyRecord(vm store.VM, reason string) {
	if err := r.m.destroyRecord(vm.Pool, vm.Hostname, vm.State, reason); err != nil {
		r.problems = append(r.problems, err)
	}
}

func (m *Manager) destroyRecord(pool, host string, from store.State, reason string) error {
	if err := m.Store.Destroy(host, reason); err != nil { // "" keeps the earlier reason
		if errs.ErrorCode(err) == errs.ENOTFOUND {
			return nil
		}
		return fmt.Errorf("destroying record of %s: %w", host, err)
	}
	m.Logger.Info("vm destroyed", "pool", pool, "hostname", host, "from", from, "to", store.StateDestroyed, "reason", reason)
	return nil
}

// runDestroys deletes completed VMs and orphans from vSphere in parallel;
// a VM already gone (ErrNotFound) counts as destroyed. A VM the provider
// refuses as not this pooler's (ErrForeign: its marker names another
// instance) is left in vSphere and its record is closed.
func (r *poolRun) runDestroys() {
	m := r.m
	n := len(r.destroys)
	var mu sync.Mutex
	m.parallel(n+len(r.orphans), func(i int) {
		name, reason := "", ""
		if i < n {
			name, reason = r.destroys[i].Hostname, r.destroys[i].Reason
		} else {
			name, reason = r.orphans[i-n], "orphan: this pooler's VM in the pool folder, unknown to the store"
		}
		ctx, cancel := context.WithTimeout(r.ctx, m.CallTimeout)
		err := m.Provider.Destroy(ctx, m.location(r.pass.cfg, name, i < n))
		cancel()
		switch {
		case errors.Is(err, ErrForeign):
			m.Logger.Warn("not destroying a vm this pooler did not create", "pool", r.pass.cfg.Name, "hostname", name, "err", err)
			if i >= n {
				return
			}
			reason = "left in vSphere: not created by this pooler (" + reason + ")"
		case err != nil && !errors.Is(err, ErrNotFound):
			m.observer().ProviderError("destroy", err)
			m.Logger.Warn("destroying vm", "pool", r.pass.cfg.Name, "hostname", name, "err", err)
			return
		case i >= n:
			m.Logger.Info("orphan destroyed", "pool", r.pass.cfg.Name, "hostname", name, "reason", reason)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if err := m.destroyRecord(r.pass.cfg.Name, name, store.StateCompleted, reason); err != nil {
			r.problems = append(r.problems, err)
		}
	})
}

// resolves says whether name resolves to ip (dns_check), and why not.
func (m *Manager) resolves(ctx context.Context, name, ip string) (bool, string) {
	addrs, err := m.LookupHost(ctx, name)
	if err != nil {
		return false, fmt.Sprintf("%s does not resolve yet (dns_check): %v", name, err)
	} else if !slices.Contains(addrs, ip) {
		return false, fmt.Sprintf("%s resolves to %s, not to the VM's %s (dns_check)", name, strings.Join(addrs, ", "), ip)
	}
	return true, ""
}
