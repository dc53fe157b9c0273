package pool

import (
	"math"
	"slices"
	"time"

	"github.com/vmpooler/vmpooler/store"
)

// Status is the live state of the pooler for GET /status.
type Status struct {
	Current, Total int     // ready VMs, sum of pool sizes
	Percent        float64 // Current/Total*100, 1 dp
	Clone, Boot    store.Durations
	Queue          Queue
	Pools          []PoolStatus // config order
	Empty          []string     // pools with no ready VM and a size > 0
	// Backend is the vCenter connection, when the Service knows it.
	Backend *BackendStatus
	// Replica is this replica and the leader, when several share one
	// state (etcd).
	Replica *ReplicaStatus
}

// ReplicaStatus names this replica and the one that runs the manager.
type ReplicaStatus struct {
	Name    string // this replica
	Leader  string // the replica that leads ("" while none does)
	Leading bool   // this replica runs the manager
}

// BackendStatus says whether the provider reaches vCenter.
type BackendStatus struct {
	Connected bool
	Reason    string // why not, by kind: "connection refused: ...", "login: ..."
}

// Queue counts VMs per state over every pool.
type Queue struct {
	Pending, Cloning, Booting, Ready, Running, Completed, Total int
}

// PoolStatus is one pool's line in Status.
type PoolStatus struct {
	Name                         string
	Ready, Running, Pending, Max int
	LastBoot                     time.Time
	Alias                        []string
	Health                       PoolHealth // foreign VMs, ready failures, notes
	Waiting                      Waiting    // waiting checkouts
}

// statusTTL is how long Status reuses today's rollup and the overrides,
// so /status never runs a transaction per request.
const statusTTL = time.Second

// Status builds the /status data from the in-memory counts and today's
// rollup (read at most once per second).
func (s *Service) Status() (Status, error) {
	day, ovr, err := s.statusData()
	if err != nil {
		return Status{}, err
	}
	counts := s.Store.Counts()
	var health map[string]PoolHealth
	if s.Health != nil {
		health = s.Health()
	}
	waiting := s.Waiters()
	var st Status
	for _, p := range s.Current().Pools {
		c := counts[p.Name]
		size := p.WithOverride(ovr[p.Name]).Size
		st.Pools = append(st.Pools, PoolStatus{Name: p.Name, Ready: c.Ready, Running: c.Running,
			Pending: c.Pending, Max: size, LastBoot: c.LastReady, Alias: p.Alias, Health: health[p.Name], Waiting: waiting[p.Name]})
		st.Current += c.Ready
		st.Total += size
		st.Queue.Pending += c.Pending
		st.Queue.Ready += c.Ready
		st.Queue.Running += c.Running
		st.Queue.Completed += c.Completed
		if c.Ready == 0 && size != 0 {
			st.Empty = append(st.Empty, p.Name)
		}
	}
	if st.Total > 0 {
		st.Percent = math.Round(float64(st.Current)/float64(st.Total)*1000) / 10
	}
	if s.Cloning != nil {
		st.Queue.Cloning = s.Cloning()
	}
	st.Queue.Booting = max(st.Queue.Pending-st.Queue.Cloning, 0)
	q := st.Queue
	st.Queue.Total = q.Pending + q.Ready + q.Running + q.Completed
	if s.Replica != nil {
		r := s.Replica()
		st.Replica = &r
	}
	if s.Backend != nil {
		ok, reason := s.Backend()
		st.Backend = &BackendStatus{Connected: ok, Reason: reason}
	}
	st.Clone = MergeDurations(day.Clone)
	st.Boot = MergeDurations(day.Boot)
	return st, nil
}

// statusData returns today's rollup and the overrides, read at most once
// per statusTTL.
func (s *Service) statusData() (store.DayRollup, map[string]store.Override, error) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	now := time.Now() // real time: the cache bounds load, not semantics
	today := s.Now().UTC().Format(time.DateOnly)
	if s.statusDay.Date == today && now.Sub(s.statusAt) < statusTTL && now.After(s.statusAt) {
		return s.statusDay, s.statusOvr, nil
	}
	days, err := s.Store.RollupDurations(today, today)
	if err != nil {
		return store.DayRollup{}, nil, err
	}
	ovr, err := s.Store.Overrides()
	if err != nil {
		return store.DayRollup{}, nil, err
	}
	day := store.DayRollup{Date: today}
	if len(days) > 0 {
		day = days[0]
		day.Date = today
	}
	s.statusAt, s.statusDay, s.statusOvr = now, day, ovr
	return day, ovr, nil
}

// InvalidateStatus drops the cached rollup so the next Status reads it afresh.
func (s *Service) InvalidateStatus() {
	s.statusMu.Lock()
	s.statusAt = time.Time{}
	s.statusMu.Unlock()
}

// MergeDurations sums per-pool durations into one.
func MergeDurations(m map[string]store.Durations) store.Durations {
	var out store.Durations
	for _, d := range m {
		out = out.Add(d)
	}
	return out
}

// PoolStat returns the pools whose name or one of whose aliases is in
// names (GET /poolstat?pool=a,b), in config order, with sizes as overridden.
func (s *Service) PoolStat(names []string) ([]PoolStatus, error) {
	st, err := s.Status()
	if err != nil {
		return nil, err
	}
	var out []PoolStatus
	for _, p := range st.Pools {
		if slices.Contains(names, p.Name) || slices.ContainsFunc(p.Alias, func(a string) bool { return slices.Contains(names, a) }) {
			out = append(out, p)
		}
	}
	return out, nil
}

// TotalRunning returns the number of running VMs over the configured pools.
func (s *Service) TotalRunning() int {
	counts := s.Store.Counts()
	n := 0
	for _, p := range s.Current().Pools {
		n += counts[p.Name].Running
	}
	return n
}
