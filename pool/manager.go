package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Manager is the reconcile loop. Each pass lists every pool's folder once,
// moves VMs through their lifecycle (ready checks, timeouts, TTLs,
// lifetimes, destroys, orphans), refills pools with a global clone limit,
// fills ondemand requests and runs queued snapshot and disk jobs.
//
// All state lives in the store; the manager keeps only what a restart may
// lose (clones in flight, the time of each ready VM's last check, backoff),
// so a new process resumes where the old one stopped.
type Manager struct {
	Config   *Config
	Store    Store
	Provider Provider
	Logger   *slog.Logger
	Now      func() time.Time
	NewName  func(prefix string) string // hostname generator, default NewHostname
	Observer Observer                   // told of clones, boots and provider errors (metrics)
	// PurgeTokens, when set, runs with store.Purge (expired API tokens).
	PurgeTokens func() (int, error)

	CallTimeout  time.Duration // deadline of each List, Destroy, Annotate (default 2m)
	CheckTimeout time.Duration // deadline of each ready check (default 30s)
	// LookupHost resolves a name for dns_check (default: the system's
	// resolver); within the ready check's deadline.
	LookupHost    func(ctx context.Context, host string) ([]string, error)
	JobTimeout    time.Duration // deadline of a snapshot, revert or add-disk (default 30m)
	JobRetryFor   time.Duration // how long a job failing with ErrTransient stays queued (default 1h)
	Parallel      int           // ready checks and destroys run at once in a pass (default 16)
	BackoffMin    time.Duration // first delay after a failed List (default 1s)
	BackoffMax    time.Duration // cap of the doubling delay (default 60s)
	PurgeInterval time.Duration // how often store.Purge runs (default 1h)
	PendingCheck  time.Duration // pass interval while VMs are pending (default 1s)
	MinPassGap    time.Duration // least time between the starts of kicked passes (default 500ms)
	// Demand, when set, returns per pool the VMs waiting checkouts ask
	// for: the manager clones for them beyond the pool's size.
	Demand func() map[string]int
	// OnReady, when set, is called after each pooled VM is made ready, so
	// that waiting checkouts are served at once.
	OnReady func()
	// AfterPass, when set, is called at the end of every pass (long-polls
	// of ondemand requests look again).
	AfterPass func()

	ReadyBackoffMin time.Duration // refill pause after a pass whose new VMs failed their ready check (default 1m)
	ReadyBackoffMax time.Duration // cap of that doubling pause (default 1h)

	// instance is this pooler's id (the store's), written into every
	// clone's marker; adopted are other instances whose VMs it took over.
	instance string
	adopted  map[string]bool

	ctx    context.Context
	cancel context.CancelCauseFunc // with ErrShutdown
	loop   sync.WaitGroup          // the loop goroutine
	work   sync.WaitGroup          // clones and jobs
	kick   chan struct{}
	opened atomic.Bool
	passMu sync.Mutex // one pass at a time; guards the pass-owned fields

	mu       sync.Mutex              // guards inflight and jobs (touched by goroutines)
	inflight map[string]*cloneTask   // hostname → clone in progress
	cloneBO  map[string]*poolBackoff // pool → backoff after failed clones
	jobs     map[uint64]string       // job id → hostname, while running
	health   map[string]*poolHealth  // pool → foreign VMs, ready failures (for /status)

	// Pass-owned (passMu).
	cloneSem  chan struct{} // task_limit
	odSem     chan struct{} // ondemand_clone_limit
	jobSem    chan struct{}
	checked   map[string]map[string]time.Time // pool → ready host → last check
	annotated map[string]map[string]bool      // pool → running hosts annotated
	backoff   map[string]*poolBackoff
	lastPurge time.Time
	warned    map[string]bool         // unconfigured pools already logged
	readyBO   map[string]*poolBackoff // pool → pause after failed ready checks
	retired   map[string]bool         // pools SetConfig removed, kept at size 0 until drained
	unconf    unconfigured            // folders of pools no longer configured
}

// cloneTask is a clone running in a goroutine.
type cloneTask struct {
	pool      string
	cancel    context.CancelFunc
	abandoned bool // the pass failed the VM and cancelled the clone
}

// poolBackoff tracks a pool whose inventory could not be listed.
type poolBackoff struct {
	failures int
	next     time.Time
	lastErr  string
}

// NewManager returns a Manager with defaults; call Open to start the loop,
// or Reconcile to run one pass synchronously.
func NewManager(cfg *Config, st Store, p Provider, logger *slog.Logger) *Manager {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	cfg.Defaults() // settings are read without fallbacks from here on
	ctx, cancel := context.WithCancelCause(context.Background())
	adopted := make(map[string]bool)
	for _, id := range st.Adopted() {
		adopted[id] = true
	}
	return &Manager{
		instance:        st.Instance(),
		adopted:         adopted,
		health:          make(map[string]*poolHealth),
		readyBO:         make(map[string]*poolBackoff),
		ReadyBackoffMin: time.Minute,
		ReadyBackoffMax: time.Hour,
		Config:          cfg,
		Store:           st,
		Provider:        p,
		Logger:          logger,
		Now:             time.Now,
		NewName:         NewHostname,
		Observer:        NopObserver{},
		CallTimeout:     2 * time.Minute,
		CheckTimeout:    30 * time.Second,
		LookupHost:      net.DefaultResolver.LookupHost,
		JobTimeout:      30 * time.Minute,
		JobRetryFor:     time.Hour,
		Parallel:        16,
		BackoffMin:      time.Second,
		BackoffMax:      time.Minute,
		PurgeInterval:   time.Hour,
		PendingCheck:    time.Second,
		MinPassGap:      500 * time.Millisecond,
		ctx:             ctx,
		cancel:          cancel,
		kick:            make(chan struct{}, 1),
		inflight:        make(map[string]*cloneTask),
		cloneBO:         make(map[string]*poolBackoff),
		jobs:            make(map[uint64]string),
		checked:         make(map[string]map[string]time.Time),
		annotated:       make(map[string]map[string]bool),
		backoff:         make(map[string]*poolBackoff),
		warned:          make(map[string]bool),
	}
}

// Open starts the loop: a pass at once (which reconciles the store with the
// inventory after a restart), then one every check_loop_delay seconds or
// when kicked.
func (m *Manager) Open() error {
	if m.ctx.Err() != nil {
		return errors.New("pool manager: already closed")
	} else if !m.opened.CompareAndSwap(false, true) {
		return errors.New("pool manager: already open")
	}
	m.loop.Add(1)
	go m.run()
	return nil
}

// Close stops the loop and waits for it, for clones and for jobs. Clones in
// flight get their context cancelled and stay pending in the store; the
// next start resolves them.
func (m *Manager) Close() error {
	m.cancel(ErrShutdown)
	m.loop.Wait()
	m.work.Wait()
	return nil
}

// Kick wakes the loop for a pass now (a checkout, return or override calls
// it). It never blocks.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Wait blocks until the clones and jobs started so far have finished.
func (m *Manager) Wait() { m.work.Wait() }

func (m *Manager) run() {
	defer m.loop.Done()
	delay := m.loopDelay()
	timer := time.NewTimer(delay)
	defer timer.Stop()
	for {
		start := time.Now()
		if err := m.Reconcile(m.ctx); err != nil && m.ctx.Err() == nil {
			m.Logger.Error("reconcile pass", "err", err)
		}
		timer.Reset(m.nextPass(m.loopDelay()))
		select {
		case <-m.ctx.Done():
			return
		case <-timer.C:
		case <-m.kick:
			// Under a stream of checkouts every request kicks (and so does
			// every finished clone): start at most one pass per MinPassGap,
			// so that the loop (and vCenter's property collector) is not
			// driven flat out by the API. (A pass's duration is no measure
			// of its cost: it includes waiting for task_limit.)
			if gap := m.MinPassGap - time.Since(start); gap > 0 {
				timer.Reset(gap)
				select {
				case <-m.ctx.Done():
					return
				case <-timer.C:
				}
			}
		}
	}
}

// nextPass is the wait before the next pass: check_loop_delay, or
// PendingCheck while VMs are pending, so that a VM that has booted is
// handed out within about a second instead of a whole loop delay.
func (m *Manager) nextPass(delay time.Duration) time.Duration {
	if m.PendingCheck <= 0 || m.PendingCheck >= delay {
		return delay
	}
	for _, c := range m.Store.Counts() {
		if c.Pending > 0 {
			return m.PendingCheck
		}
	}
	return delay
}

// Reconcile runs one pass over every pool. It returns store errors;
// provider errors are logged and put the pool into backoff. Clones and jobs
// it starts keep running after it returns (see Wait).
func (m *Manager) Reconcile(ctx context.Context) error {
	m.passMu.Lock()
	defer m.passMu.Unlock()
	m.initLimits()
	m.pruneRetired()
	now := m.Now()
	overrides, err := m.Store.Overrides()
	if err != nil {
		return fmt.Errorf("reading overrides: %w", err)
	}
	reqs, err := m.Store.PendingRequests()
	if err != nil {
		return fmt.Errorf("reading ondemand requests: %w", err)
	}
	liveReqs := make(map[string]bool, len(reqs))
	for _, r := range reqs {
		liveReqs[r.ID] = true
	}
	var errs []error
	passes := make([]*poolPass, 0, len(m.Config.Pools))
	byName := make(map[string]*poolPass, len(m.Config.Pools))
	fetched := m.fetchPools(ctx, now)
	var demand map[string]int
	if m.Demand != nil {
		demand = m.Demand()
	}
	for i, pc := range m.Config.Pools {
		if err := ctx.Err(); err != nil {
			return err
		}
		p, err := m.reconcilePool(ctx, pc, &fetched[i], overrides[pc.Name], liveReqs, now, demand[pc.Name])
		errs = append(errs, err)
		passes = append(passes, p)
		byName[pc.Name] = p
	}
	m.fill(passes)
	// Read the requests again: the ready checks above delivered VMs to them.
	if reqs, err = m.Store.PendingRequests(); err != nil {
		return errors.Join(append(errs, fmt.Errorf("reading ondemand requests: %w", err))...)
	}
	errs = append(errs, m.reconcileRequests(reqs, byName, now))
	errs = append(errs, m.startJobs(now))
	errs = append(errs, m.maybePurge(now))
	errs = append(errs, m.reconcileUnconfigured(ctx, now))
	if m.AfterPass != nil {
		m.AfterPass()
	}
	return errors.Join(errs...)
}

// initLimits sizes the semaphores from the config on the first pass.
func (m *Manager) initLimits() {
	if m.cloneSem == nil {
		m.cloneSem = make(chan struct{}, m.Config.TaskLimit)
		m.odSem = make(chan struct{}, m.Config.OndemandCloneLimit)
		m.jobSem = make(chan struct{}, m.Config.TaskLimit)
	}
}

// maybePurge deletes old destroyed records every PurgeInterval, and then
// also warns (once each) about pools in the store that are not configured.
func (m *Manager) maybePurge(now time.Time) error {
	if !m.lastPurge.IsZero() && now.Sub(m.lastPurge) < m.PurgeInterval {
		return nil
	}
	m.lastPurge = now
	n, err := m.Store.Purge()
	if err != nil {
		return fmt.Errorf("purge: %w", err)
	} else if n > 0 {
		m.Logger.Info("purged destroyed vm records", "count", n)
	}
	if m.PurgeTokens != nil {
		if _, err := m.PurgeTokens(); err != nil {
			m.Logger.Error("purging expired tokens", "err", err)
		}
	}
	names, err := m.Store.Pools()
	if err != nil {
		return fmt.Errorf("listing pools: %w", err)
	}
	for _, name := range names {
		if _, ok := m.Config.Pool(name); !ok && !m.warned[name] {
			m.warned[name] = true
			m.Logger.Warn("store has live vms of a pool that is not configured; leaving them alone", "pool", name)
		}
	}
	return nil
}

// failed counts a failure, schedules the next try after a delay doubling
// from min to max, and reports whether the error differs from the last.
func (b *poolBackoff) failed(now time.Time, err error, minDelay, maxDelay time.Duration) (time.Duration, bool) {
	b.failures++
	delay := maxDelay
	if b.failures < 32 {
		if d := minDelay << (b.failures - 1); d > 0 && d < delay {
			delay = d
		}
	}
	b.next = now.Add(delay)
	msg := err.Error()
	changed := msg != b.lastErr
	b.lastErr = msg
	return delay, changed
}

// listFailed records a failed List and schedules the pool's next try.
func (m *Manager) listFailed(pool string, now time.Time, err error) {
	b := m.backoff[pool]
	if b == nil {
		b = &poolBackoff{}
		m.backoff[pool] = b
	}
	m.observer().ProviderError("list", err)
	if delay, changed := b.failed(now, err, m.BackoffMin, m.BackoffMax); changed {
		m.Logger.Warn("cannot list pool inventory; backing off", "pool", pool, "err", err, "retry_in", delay)
	}
}

// cloneFailed slows down a pool's refills after a failed clone, so that a
// missing template or folder does not create a failed record every pass.
func (m *Manager) cloneFailed(pool string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.cloneBO[pool]
	if b == nil {
		b = &poolBackoff{}
		m.cloneBO[pool] = b
	}
	if delay, changed := b.failed(m.Now(), err, m.BackoffMin, m.BackoffMax); changed {
		m.Logger.Warn("clones failing; slowing refills", "pool", pool, "err", err, "retry_in", delay)
	}
}

// cloneOK clears a pool's clone backoff.
func (m *Manager) cloneOK(pool string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.cloneBO[pool]; b != nil {
		delete(m.cloneBO, pool)
		m.Logger.Info("clones succeeding again", "pool", pool, "failures", b.failures)
	}
}

// cloneWait reports whether the pool's refills must wait.
func (m *Manager) cloneWait(pool string, now time.Time) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	b := m.cloneBO[pool]
	return b != nil && now.Before(b.next)
}

// listOK clears a pool's backoff.
func (m *Manager) listOK(pool string) {
	if b := m.backoff[pool]; b != nil {
		delete(m.backoff, pool)
		m.Logger.Info("pool inventory reachable again", "pool", pool, "failures", b.failures)
	}
}

// backingOff reports whether the pool must wait before the next List.
func (m *Manager) backingOff(pool string, now time.Time) bool {
	b := m.backoff[pool]
	return b != nil && now.Before(b.next)
}

// Cloning returns how many clones are in flight (/status queue.cloning).
func (m *Manager) Cloning() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.inflight)
}

// flying returns the hostnames whose clone is in flight.
func (m *Manager) flying() map[string]bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]bool, len(m.inflight))
	for h := range m.inflight {
		out[h] = true
	}
	return out
}

// abandonClone cancels a clone whose VM the pass has failed.
func (m *Manager) abandonClone(host string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.inflight[host]; t != nil {
		t.abandoned = true
		t.cancel()
	}
}

// parallel runs fn(0..n-1) on at most m.Parallel goroutines and waits.
func (m *Manager) parallel(n int, fn func(i int)) {
	workers := min(positive(m.Parallel, 16), n)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}

// positive returns v, or def when v is not positive.
func positive(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// tryAcquire takes a slot of sem without blocking.
func tryAcquire(sem chan struct{}) bool {
	select {
	case sem <- struct{}{}:
		return true
	default:
		return false
	}
}

// poolTimeout is how long a VM may stay pending.
func (m *Manager) poolTimeout(pc PoolConfig) time.Duration {
	return Minutes(pc.Timeout)
}

// poolReadyTTL is how long a VM may stay ready.
func (m *Manager) poolReadyTTL(pc PoolConfig) time.Duration {
	return Minutes(pc.ReadyTTL)
}

// location names a VM of a pool for the provider; known says the store
// has a record of it (see Location.Mine).
func (m *Manager) location(pc PoolConfig, host string, known bool) Location {
	owners := make([]string, 0, 1+len(m.adopted))
	owners = append(owners, m.instance)
	for id := range m.adopted {
		owners = append(owners, id)
	}
	return Location{Pool: pc.Name, Name: host, Folder: pc.Folder, Datacenter: pc.Datacenter,
		Owners: owners, Known: known}
}

// fmtMinutes writes a duration in the config's unit: "15m".
func fmtMinutes(d time.Duration) string {
	return fmt.Sprintf("%dm", d/time.Minute)
}

// observer returns the Observer, never nil.
func (m *Manager) observer() Observer {
	if m.Observer == nil {
		return NopObserver{}
	}
	return m.Observer
}
