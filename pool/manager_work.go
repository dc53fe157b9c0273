package pool

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"

	"github.com/vmpooler/vmpooler/store"
)

// fill starts clones for pools below their size, one clone per pool in
// turn so that no pool starves the others of the global task_limit.
func (m *Manager) fill(passes []*poolPass) {
	now := m.Now()
	for _, p := range passes {
		if p.deficit > 0 && m.cloneWait(p.cfg.Name, now) {
			p.deficit = 0
		}
	}
	for {
		started := false
		for _, p := range passes {
			if !p.reachable || p.deficit <= 0 {
				continue
			}
			if !tryAcquire(m.cloneSem) {
				return
			}
			if err := m.startClone(p, nil, m.cloneSem); err != nil {
				<-m.cloneSem
				m.Logger.Error("starting clone", "pool", p.cfg.Name, "err", err)
				p.deficit = 0
				continue
			}
			p.deficit--
			started = true
		}
		if !started {
			return
		}
	}
}

// startClone records a pending VM (for an ondemand request when req is not
// nil) and clones it in a goroutine that releases a slot of sem when done.
func (m *Manager) startClone(p *poolPass, req *store.Request, sem chan struct{}) error {
	pc := p.cfg
	vm := store.VM{Pool: pc.Name, Template: p.template, CloneTarget: p.cloneTarget}
	if req != nil {
		vm.RequestID, vm.User, vm.Lifetime = req.ID, req.User, req.Lifetime
		if vm.Lifetime == 0 && vm.User != "" {
			vm.Lifetime = m.Config.VMLifetimeAuth // 0 still means vm_lifetime
		}
	}
	vm, err := m.addPendingVM(vm)
	if err != nil {
		return err
	}
	spec := CloneSpec{
		Pool:        pc.Name,
		Name:        vm.Hostname,
		Instance:    m.instance,
		Template:    p.template,
		Folder:      pc.Folder,
		Datastore:   pc.Datastore,
		Datacenter:  pc.Datacenter,
		CloneTarget: p.cloneTarget,
		LinkedClone: pc.LinkedClone == nil || *pc.LinkedClone,
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.poolTimeout(pc))
	m.mu.Lock()
	m.inflight[vm.Hostname] = &cloneTask{pool: pc.Name, cancel: cancel}
	m.mu.Unlock()
	m.Logger.Info("vm pending", "pool", pc.Name, "hostname", vm.Hostname, "to", store.StatePending,
		"reason", "cloning "+p.template, "request", vm.RequestID)
	m.work.Add(1)
	go m.runClone(ctx, spec, sem)
	return nil
}

// runClone clones one VM. On success the VM stays pending (its clone time
// recorded) for the ready check; on failure it is failed and destroyed. If
// the manager is closing, the VM is left pending for the next start.
func (m *Manager) runClone(ctx context.Context, spec CloneSpec, sem chan struct{}) {
	defer m.work.Done()
	defer func() { <-sem }()
	defer m.Kick()
	log := m.Logger.With("pool", spec.Pool, "hostname", spec.Name)
	start := m.Now()
	err := m.Provider.Clone(ctx, spec)
	if m.ctx.Err() == nil {
		m.observer().CloneFinished(spec.Pool, m.Now().Sub(start), err)
		if err != nil {
			m.observer().ProviderError("clone", err)
		}
	}
	m.mu.Lock()
	task := m.inflight[spec.Name]
	abandoned := task.abandoned
	m.mu.Unlock()
	// Leave the in-flight set only when the store reflects the outcome.
	defer func() {
		m.mu.Lock()
		delete(m.inflight, spec.Name)
		m.mu.Unlock()
		task.cancel()
	}()
	switch {
	case err == nil:
		if err := m.Store.MarkCloned(spec.Name); err != nil {
			log.Warn("recording clone finished", "err", err) // failed meanwhile: the pass destroys it
			return
		}
		log.Info("clone finished")
		m.cloneOK(spec.Pool)
		return
	case m.ctx.Err() != nil:
		log.Info("clone interrupted by shutdown; left pending for the next start", "err", err)
		return
	}
	reason := "clone failed: " + err.Error()
	if !abandoned {
		m.cloneFailed(spec.Pool, err)
	}
	if abandoned {
		reason = "" // the pass failed it already, with its reason
	} else if ferr := m.Store.Fail(spec.Name, store.StatePending, reason); ferr != nil {
		log.Error("failing vm after clone error", "err", ferr, "clone_err", err)
		return
	} else {
		log.Warn("vm failed", "from", store.StatePending, "to", store.StateCompleted, "reason", reason)
		m.observer().VMFailed(spec.Pool, "clone_failed")
	}
	if !errors.Is(err, ErrExists) { // ErrExists: that VM is someone else's
		dctx, cancel := context.WithTimeout(m.ctx, m.CallTimeout)
		// Known: false: a VM this clone made carries the marker, so one
		// without it is not this clone's.
		loc := m.location(PoolConfig{Name: spec.Pool, Folder: spec.Folder, Datacenter: spec.Datacenter}, spec.Name, false)
		derr := m.Provider.Destroy(dctx, loc)
		cancel()
		if errors.Is(derr, ErrForeign) {
			log.Warn("not destroying a vm this pooler did not create", "err", derr)
		} else if derr != nil && !errors.Is(derr, ErrNotFound) {
			m.observer().ProviderError("destroy", derr)
			log.Warn("destroying failed clone; left completed for the next pass", "err", derr)
			return
		}
	}
	if err := m.destroyRecord(spec.Pool, spec.Name, store.StateCompleted, reason); err != nil {
		log.Error("destroying failed clone record", "err", err)
	}
}

// reconcileRequests expires old ondemand requests, marks filled ones ready
// and clones what the others still lack, within ondemand_clone_limit.
func (m *Manager) reconcileRequests(reqs []store.Request, passes map[string]*poolPass, now time.Time) error {
	ttl := Minutes(m.Config.OndemandRequestTTL)
	var problems []error
	for i := range reqs {
		req := &reqs[i]
		if now.Sub(req.Created) > ttl {
			problems = append(problems, m.expireRequest(req, passes, "not filled within "+fmtMinutes(ttl)))
			continue
		}
		filled, unknown := true, ""
		for _, want := range req.Requested {
			if _, ok := passes[want.Pool]; !ok {
				unknown = want.Pool
			}
			filled = filled && len(req.Hosts[want.Pool]) >= want.Count
		}
		if unknown != "" {
			problems = append(problems, m.expireRequest(req, passes, "pool "+unknown+" is not configured"))
			continue
		} else if filled {
			if err := m.Store.FinishRequest(req.ID, store.RequestReady, ""); err != nil {
				problems = append(problems, fmt.Errorf("request %s: %w", req.ID, err))
				continue
			}
			m.Logger.Info("ondemand request ready", "request", req.ID)
			continue
		}
		m.cloneForRequest(req, passes)
	}
	return errors.Join(problems...)
}

// cloneForRequest starts the clones a request still lacks.
func (m *Manager) cloneForRequest(req *store.Request, passes map[string]*poolPass) {
	wanted := make(map[string]int)
	for _, want := range req.Requested {
		wanted[want.Pool] += want.Count
	}
	for _, want := range req.Requested {
		p := passes[want.Pool]
		if p == nil || !p.reachable || m.cloneWait(p.cfg.Name, m.Now()) {
			continue
		}
		for p.odPending[req.ID]+len(req.Hosts[want.Pool]) < wanted[want.Pool] {
			if !tryAcquire(m.odSem) {
				return
			}
			if err := m.startClone(p, req, m.odSem); err != nil {
				<-m.odSem
				m.Logger.Error("starting ondemand clone", "pool", p.cfg.Name, "request", req.ID, "err", err)
				return
			}
			p.odPending[req.ID]++
		}
	}
}

// expireRequest fails a request and the VMs cloned or delivered for it.
func (m *Manager) expireRequest(req *store.Request, passes map[string]*poolPass, reason string) error {
	if err := m.Store.FinishRequest(req.ID, store.RequestFailed, reason); err != nil {
		return fmt.Errorf("request %s: %w", req.ID, err)
	}
	req.State = store.RequestFailed
	m.Logger.Warn("ondemand request failed", "request", req.ID, "reason", reason)
	hosts := map[string]string{} // host → pool
	for name, p := range passes {
		for _, h := range p.odHosts[req.ID] {
			hosts[h] = name
		}
	}
	for name, hs := range req.Hosts {
		for _, h := range hs {
			hosts[h] = name
		}
	}
	var problems []error
	for _, h := range slices.Sorted(maps.Keys(hosts)) {
		why := "ondemand request " + req.ID + " failed: " + reason
		err := m.Store.Fail(h, "", why)
		if err != nil && errs.ErrorCode(err) != errs.ENOTFOUND {
			problems = append(problems, fmt.Errorf("failing %s: %w", h, err))
			continue
		}
		m.abandonClone(h)
		m.Logger.Info("vm failed", "hostname", h, "to", store.StateCompleted, "reason", why)
		if err == nil {
			m.observer().VMFailed(hosts[h], "ondemand")
		}
	}
	return errors.Join(problems...)
}

// startJobs runs queued snapshot, revert and add-disk jobs in goroutines,
// one at a time per VM and in queue order.
func (m *Manager) startJobs(now time.Time) error {
	jobs, err := m.Store.Jobs()
	if err != nil {
		return fmt.Errorf("reading jobs: %w", err)
	}
	blocked := make(map[string]bool)
	m.mu.Lock()
	for _, host := range m.jobs {
		blocked[host] = true
	}
	m.mu.Unlock()
	var problems []error
	for _, j := range jobs {
		if blocked[j.Hostname] {
			continue
		}
		blocked[j.Hostname] = true
		vm, err := m.Store.Get(j.Hostname)
		if err != nil && errs.ErrorCode(err) != errs.ENOTFOUND {
			problems = append(problems, err)
			continue
		}
		pc, ok := m.Config.Pool(vm.Pool)
		var why error
		switch {
		case err != nil:
			why = fmt.Errorf("vm %s not found", j.Hostname)
		case vm.State == store.StateCompleted || vm.State == store.StateDestroyed:
			why = fmt.Errorf("vm %s is %s", j.Hostname, vm.State)
		case !ok:
			why = fmt.Errorf("pool %s is not configured", vm.Pool)
		}
		if why != nil {
			problems = append(problems, m.finishJob(j, why))
			continue
		}
		if !tryAcquire(m.jobSem) {
			break
		}
		m.mu.Lock()
		m.jobs[j.ID] = j.Hostname
		m.mu.Unlock()
		m.work.Add(1)
		go m.runJob(j, pc)
	}
	return errors.Join(problems...)
}

// runJob carries out one job of pool pc through the provider and records
// its outcome. A job failing with ErrTransient (its wait cut short by
// JobTimeout, for one) stays queued for JobRetryFor; the provider finds out
// on the next attempt what the earlier one did, by the snapshot's name or
// the disk's id, so a retry never snapshots or adds a disk twice.
func (m *Manager) runJob(j store.Job, pc PoolConfig) {
	defer m.work.Done()
	defer func() {
		m.mu.Lock()
		delete(m.jobs, j.ID)
		m.mu.Unlock()
		<-m.jobSem
	}()
	loc := m.location(pc, j.Hostname, true)
	ctx, cancel := context.WithTimeout(m.ctx, m.JobTimeout)
	defer cancel()
	var err error
	op := string(j.Kind)
	switch j.Kind {
	case store.JobSnapshot:
		err = m.Provider.Snapshot(ctx, loc, j.Snapshot, pc.SnapshotWithMemory())
	case store.JobRevert:
		err = m.Provider.Revert(ctx, loc, j.Snapshot)
	case store.JobDisk:
		op = "add_disk"
		err = m.Provider.AddDisk(ctx, loc, j.SizeGB, diskID(j))
	default:
		err = fmt.Errorf("unknown job kind %q", j.Kind)
	}
	if err != nil && m.ctx.Err() == nil {
		m.observer().ProviderError(op, err)
	}
	if err != nil && (m.ctx.Err() != nil || (errors.Is(err, ErrTransient) && m.Now().Sub(j.Requested) < m.JobRetryFor)) {
		m.Logger.Warn("job left queued", "pool", loc.Pool, "hostname", loc.Name, "job", j.Kind, "err", err)
		return
	}
	if ferr := m.finishJob(j, err); ferr != nil {
		m.Logger.Error("recording job outcome", "hostname", loc.Name, "err", ferr)
	}
}

// diskID is the identity of the disk a disk job adds, the same on every
// attempt: the job's id, which the store never reuses, and its request
// time, which tells apart jobs of a database made afresh.
func diskID(j store.Job) string {
	return fmt.Sprintf("%d-%d", j.ID, j.Requested.Unix())
}

// finishJob records a job's outcome and logs it.
func (m *Manager) finishJob(j store.Job, jobErr error) error {
	if err := m.Store.FinishJob(j.ID, jobErr); err != nil {
		return fmt.Errorf("finishing job %d: %w", j.ID, err)
	}
	log := m.Logger.With("hostname", j.Hostname, "job", j.Kind, "snapshot", j.Snapshot, "size_gb", j.SizeGB)
	if jobErr != nil {
		log.Warn("job failed", "reason", jobErr.Error())
	} else {
		log.Info("job done")
	}
	return nil
}
