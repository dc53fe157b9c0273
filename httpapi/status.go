package httpapi

import (
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

const okMessage = "Battle station fully armed and operational."

// durations is a {"average","min","max","total"} object.
type durations struct {
	Average float64 `json:"average"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Total   float64 `json:"total"`
}

func toDurations(d store.Durations) durations {
	if d.Count == 0 {
		return durations{}
	}
	return durations{Average: round(d.Sum/float64(d.Count), 1), Min: round(d.Min, 2),
		Max: round(d.Max, 2), Total: round(d.Sum, 2)}
}

func round(f float64, places int) float64 {
	p := math.Pow10(places)
	return math.Round(f*p) / p
}

type statusStatus struct {
	OK      bool
	Message string
	Empty   []string
	Uptime  float64
}

// statusTaskObj is a /status boot or clone section, written without reflection.
func statusTaskObj(d store.Durations) obj {
	t := toDurations(d)
	return obj{{"duration", obj{{"average", t.Average}, {"min", t.Min}, {"max", t.Max}, {"total", t.Total}}},
		{"count", obj{{"total", d.Count}}}}
}

// handleStatus answers GET /status[?view=a,b] from in-memory counts and a
// cached rollup of today (no transaction per request).
func (s *server) handleStatus(w http.ResponseWriter, r *http.Request, c call) error {
	st, err := s.svc.Status()
	if err != nil {
		return err
	}
	show := func(string) bool { return true }
	if q := r.URL.Query(); q.Has("view") && r.URL.RawQuery != "view" {
		views := strings.Split(q.Get("view"), ",")
		show = func(name string) bool { return slices.Contains(views, name) }
	}
	out := obj{{"ok", true}}
	if show("boot") {
		out = append(out, kv{"boot", statusTaskObj(st.Boot)})
	}
	if show("capacity") {
		out = append(out, kv{"capacity", obj{{"current", st.Current}, {"total", st.Total}, {"percent", st.Percent}}})
	}
	if show("clone") {
		out = append(out, kv{"clone", statusTaskObj(st.Clone)})
	}
	status := statusStatus{OK: true, Message: okMessage, Uptime: round(s.now().Sub(s.started).Seconds(), 1)}
	if s.cfg.SiteName != "" {
		status.Message = s.cfg.SiteName + ": " + okMessage
	}
	if show("pools") {
		pools := make(obj, 0, len(st.Pools))
		for _, p := range st.Pools {
			po := obj{{"ready", p.Ready}, {"running", p.Running}, {"pending", p.Pending}, {"max", p.Max}, {"lastBoot", formatRuby(p.LastBoot)}}
			if len(p.Alias) > 0 {
				po = append(po, kv{"alias", []string(p.Alias)})
			}
			po = append(po, healthFields(p.Health)...)
			if wt := p.Waiting; wt.Count > 0 {
				po = append(po, kv{"waiting", obj{{"count", wt.Count},
					{"oldest_seconds", round(s.now().Sub(wt.Oldest).Seconds(), 1)}}})
			}
			pools = append(pools, kv{p.Name, po})
		}
		out = append(out, kv{"pools", pools})
		if len(st.Empty) > 0 {
			status.OK, status.Empty = false, st.Empty
			status.Message = "Found " + strconv.Itoa(len(st.Empty)) + " empty pools."
		}
	}
	if show("queue") {
		q := st.Queue
		out = append(out, kv{"queue", obj{{"pending", q.Pending}, {"cloning", q.Cloning}, {"booting", q.Booting},
			{"ready", q.Ready}, {"running", q.Running}, {"completed", q.Completed}, {"total", q.Total}}})
	}
	if r := st.Replica; r != nil {
		out = append(out, kv{"replica", obj{{"name", r.Name}, {"leader", r.Leader}, {"leading", r.Leading}}})
	}
	if b := st.Backend; b != nil {
		vc := obj{{"connected", b.Connected}}
		if !b.Connected {
			vc = append(vc, kv{"error", b.Reason})
			status.OK = false
			status.Message = "vCenter unreachable: " + b.Reason
		}
		out = append(out, kv{"vcenter", vc})
	}
	so := obj{{"ok", status.OK}, {"message", status.Message}}
	if len(status.Empty) > 0 {
		so = append(so, kv{"empty", status.Empty})
	}
	out = append(out, kv{"status", append(so, kv{"uptime", status.Uptime})})
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handlePoolStat answers GET /poolstat?pool=a,b: the pools named or
// aliased in the list, {"pools":{"<pool>":{"max","alias","ready"}}}.
func (s *server) handlePoolStat(w http.ResponseWriter, r *http.Request, c call) error {
	var names []string
	if q := r.URL.Query().Get("pool"); q != "" {
		names = strings.Split(q, ",")
	}
	pools, err := s.svc.PoolStat(slices.DeleteFunc(names, func(n string) bool { return n == "" }))
	if err != nil {
		return err
	}
	out := make(obj, 0, len(pools))
	for _, p := range pools {
		po := obj{{"max", p.Max}}
		if len(p.Alias) > 0 {
			po = append(po, kv{"alias", []string(p.Alias)})
		}
		out = append(out, kv{p.Name, append(po, kv{"ready", p.Ready})})
	}
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {"pools", out}})
	return nil
}

// handleTotalRunning answers GET /totalrunning.
func (s *server) handleTotalRunning(w http.ResponseWriter, r *http.Request, c call) error {
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {"running", s.svc.TotalRunning()}})
	return nil
}

// handleHealthcheck answers GET /healthcheck: 200 {"ok":true} while the
// process serves requests and reaches vCenter; 503 with the reason while
// vCenter is unreachable (ready VMs are still handed out meanwhile, but
// pools do not refill).
func (s *server) handleHealthcheck(w http.ResponseWriter, r *http.Request, c call) error {
	if s.st != nil {
		if err := s.st.Ping(); err != nil {
			return err // 503: the database (etcd) does not answer
		}
	}
	if s.svc.Backend != nil {
		if ok, reason := s.svc.Backend(); !ok {
			writeJSON(w, http.StatusServiceUnavailable, obj{{"ok", false}, {"error", "vCenter unreachable: " + reason}})
			return nil
		}
	}
	writeJSON(w, http.StatusOK, obj{{"ok", true}})
	return nil
}

// summaryTask is a boot or clone section: durations and counts, overall
// (with average/min/max over days for count) or per day (total only).
type summaryTask struct {
	Duration summaryDurations `json:"duration"`
	Count    obj              `json:"count"`
}

type summaryDurations struct {
	durations
	Pool map[string]durations `json:"pool,omitempty"`
}

// A /summary answer can hold megabytes (a day of unique build URLs), so at
// most summarySlots are built and written at once, each with its own write
// deadline: clients that never read cannot pile answers up in memory.
const (
	summarySlots    = 4
	summaryWait     = 5 * time.Second  // for a free slot, then 503
	summaryDeadline = 20 * time.Second // to build and write one answer
)

// summarySlot takes a /summary slot (EEMPTY after summaryWait) and sets
// the answer's write deadline; release gives the slot back.
func (s *server) summarySlot(w http.ResponseWriter, r *http.Request) (release func(), err error) {
	t := time.NewTimer(summaryWait)
	defer t.Stop()
	select {
	case s.summary <- struct{}{}:
	case <-t.C:
		return nil, errs.Errorf(errs.EEMPTY, "too many /summary requests at once; try again")
	case <-r.Context().Done():
		return nil, errs.Errorf(errs.EEMPTY, "request cancelled")
	}
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(summaryDeadline)) // unsupported in tests: fine
	return func() { <-s.summary }, nil
}

// handleSummary answers GET /summary[/<section>[/<key>]]?from=&to=.
func (s *server) handleSummary(w http.ResponseWriter, r *http.Request, c call) error {
	section, key := c.ps.ByName("section"), c.ps.ByName("key")
	if section != "" && section != "boot" && section != "clone" && section != "tag" {
		return errs.Errorf(errs.ENOTFOUND, "unknown summary section %q (want boot, clone or tag)", section)
	}
	if key != "" && section != "tag" && key != "duration" && key != "count" {
		return errs.Errorf(errs.ENOTFOUND, "unknown %s key %q (want duration or count)", section, key)
	}
	release, err := s.summarySlot(w, r)
	if err != nil {
		return err
	}
	defer release()
	q := r.URL.Query()
	sum, err := s.svc.Summary(q.Get("from"), q.Get("to"))
	if err != nil {
		return err
	}
	daily := make([]obj, 0, len(sum.Days))
	for _, d := range sum.Days {
		day := obj{{"date", d.Date}}
		daily = append(daily, append(day, summaryParts(section, key, dayTask(d.Boot), dayTask(d.Clone), tagCounts(d.Tags))...))
	}
	out := obj{{"ok", true}}
	out = append(out, summaryParts(section, key, rangeTask(sum.Boot), rangeTask(sum.Clone), tagCounts(sum.Tags))...)
	writeJSON(w, http.StatusOK, append(out, kv{"daily", daily}))
	return nil
}

// summaryParts is the boot, clone and tag sections that section ("" for
// all) and key ("" for the whole section) select.
func summaryParts(section, key string, boot, clone summaryTask, tags obj) obj {
	var out obj
	if section == "" || section == "boot" {
		out = append(out, kv{"boot", boot.part(key)})
	}
	if section == "" || section == "clone" {
		out = append(out, kv{"clone", clone.part(key)})
	}
	if section == "" || section == "tag" {
		out = append(out, kv{"tag", tagPart(tags, key)})
	}
	return out
}

// part is the section with only key ("duration" or "count"), or whole.
func (t summaryTask) part(key string) any {
	switch key {
	case "duration":
		return obj{{"duration", t.Duration}}
	case "count":
		return obj{{"count", t.Count}}
	}
	return t
}

// tagPart is the tag section with only the tag key ({} if absent), or whole.
func tagPart(tags obj, key string) obj {
	if key == "" {
		return tags
	}
	for _, m := range tags {
		if m.k == key {
			return obj{m}
		}
	}
	return obj{}
}

func poolDurations(m map[string]store.Durations) map[string]durations {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]durations, len(m))
	for p, d := range m {
		out[p] = toDurations(d)
	}
	return out
}

func dayTask(m map[string]store.Durations) summaryTask {
	all := pool.MergeDurations(m)
	return summaryTask{summaryDurations{toDurations(all), poolDurations(m)}, withPoolCounts(obj{{"total", all.Count}}, m)}
}

// withPoolCounts adds upstream's per-pool counts to a count object:
// "pool": {"<pool>": {"total": n}, ...}, when any pool has one.
func withPoolCounts(count obj, m map[string]store.Durations) obj {
	if len(m) == 0 {
		return count
	}
	pools := make(obj, 0, len(m))
	for _, p := range slices.Sorted(maps.Keys(m)) {
		pools = append(pools, kv{p, obj{{"total", m[p].Count}}})
	}
	return append(count, kv{"pool", pools})
}

// rangeTask is the overall section: durations over the range, and the
// count's total with its average, min and max per day.
func rangeTask(t pool.SummaryTask) summaryTask {
	return summaryTask{summaryDurations{toDurations(t.All), poolDurations(t.Pools)},
		withPoolCounts(obj{{"average", round(t.PerDay, 1)}, {"min", t.MinDay}, {"max", t.MaxDay}, {"total", t.All.Count}}, t.Pools)}
}

// tagCounts writes {"<tag>":{"<value>":n,...,"total":n}} with sorted keys.
func tagCounts(tags map[string]map[string]int) obj {
	names := make([]string, 0, len(tags))
	for t := range tags {
		names = append(names, t)
	}
	slices.Sort(names)
	out := make(obj, 0, len(names))
	for _, t := range names {
		vals := make([]string, 0, len(tags[t]))
		for v := range tags[t] {
			vals = append(vals, v)
		}
		slices.Sort(vals)
		counts, sum := make(obj, 0, len(vals)+1), 0
		for _, v := range vals {
			counts = append(counts, kv{v, tags[t][v]})
			sum += tags[t][v]
		}
		out = append(out, kv{t, append(counts, kv{"total", sum})})
	}
	return out
}

// maxForeignListed bounds the foreign VM paths one pool's /status entry lists.
const maxForeignListed = 20

// healthFields are the optional fields of a pool's /status entry, present
// only when there is something to say (so upstream's shape is unchanged):
// "foreign" (VMs in the pool folder this pooler did not create and leaves
// alone), "ready_failure" (why new VMs keep failing their ready check, and
// when the next clone may start), "clone_failure" (why clones keep
// failing: capacity, a privilege, a missing template) and "notes" (the
// provider's remarks).
func healthFields(h pool.PoolHealth) obj {
	var out obj
	if n := len(h.Foreign); n > 0 {
		out = append(out, kv{"foreign", obj{{"count", n}, {"vms", h.Foreign[:min(n, maxForeignListed)]}}})
	}
	if h.ReadyFailure != "" {
		out = append(out, kv{"ready_failure", obj{{"reason", h.ReadyFailure},
			{"failed_passes", h.ReadyFailedPasses}, {"next_clone", h.Refill.UTC().Format(time.RFC3339)}}})
	}
	if h.CloneFailure != "" {
		out = append(out, kv{"clone_failure", obj{{"reason", h.CloneFailure},
			{"failures", h.CloneFailures}, {"next_clone", h.CloneRetry.UTC().Format(time.RFC3339)}}})
	}
	if len(h.Notes) > 0 {
		out = append(out, kv{"notes", h.Notes})
	}
	return out
}
