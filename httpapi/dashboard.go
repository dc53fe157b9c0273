package httpapi

import (
	"cmp"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

// The dashboard is one HTML page with its style and script inlined when the
// package loads, so it is a single request, works offline (no fonts,
// scripts or CDNs) and runs under a Content-Security-Policy that allows
// exactly that script and that style (by hash) and nothing else. The page
// polls /status and /dashboard/running every few seconds (dashboard.js
// says why polling rather than Server-Sent Events).
var (
	//go:embed dashboard/index.html
	dashboardHTML string
	//go:embed dashboard/dashboard.css
	dashboardCSS string
	//go:embed dashboard/dashboard.js
	dashboardJS string

	dashboardPage, dashboardCSP = buildDashboard()
)

// buildDashboard inlines the style and script into the page and returns it
// with its Content-Security-Policy.
func buildDashboard() ([]byte, string) {
	hash := func(s string) string {
		sum := sha256.Sum256([]byte(s))
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	page := strings.Replace(dashboardHTML, "<!--STYLE-->", "<style>"+dashboardCSS+"</style>", 1)
	page = strings.Replace(page, "<!--SCRIPT-->", "<script>"+dashboardJS+"</script>", 1)
	csp := "default-src 'none'; script-src " + hash(dashboardJS) + "; style-src " + hash(dashboardCSS) +
		"; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return []byte(page), csp
}

// DashboardPageBytes is the size of the dashboard page as served (its
// whole weight: nothing else is loaded).
func DashboardPageBytes() int { return len(dashboardPage) }

// mountDashboard adds the routes served without a version prefix, as
// upstream: / (a redirect), the page, and upstream's two JSON endpoints.
// The page's own data routes (/dashboard/info, /running, /history) are
// in the route table and so exist under every version prefix too.
func (s *server) mountDashboard(r *httprouter.Router) {
	for _, rt := range []route{
		{"GET", "/", s.handleRoot},
		{"GET", "/dashboard", s.handleDashboard},
		{"GET", "/dashboard/stats/vmpooler/pool", s.handleStatsPool},
		{"GET", "/dashboard/stats/vmpooler/running", s.handleStatsRunning},
	} {
		h := s.adapt(vNone, rt.path, rt.h)
		r.Handle("GET", rt.path, h)
		r.Handle("HEAD", rt.path, h)
	}
}

// handleRoot answers GET / with upstream's redirect to the dashboard.
func (s *server) handleRoot(w http.ResponseWriter, r *http.Request, c call) error {
	w.Header().Set("Location", "/dashboard/") // no body, as upstream
	w.WriteHeader(http.StatusFound)
	return nil
}

// handleDashboard serves the page: the one answer of this package that is
// HTML rather than JSON.
func (s *server) handleDashboard(w http.ResponseWriter, r *http.Request, c call) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", dashboardCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	w.Write(dashboardPage)
	return nil
}

// handleStatsPool answers upstream's GET /dashboard/stats/vmpooler/pool
// [?history]: {"<pool>":{"size":n,"ready":n[,"history":[n]]}} with no "ok"
// key, as upstream. Sizes are those in force (runtime overrides applied).
// Upstream's history is Graphite's last hour of ready counts, or [ready]
// without Graphite; this pooler keeps no such series, so it answers as
// upstream does without Graphite.
func (s *server) handleStatsPool(w http.ResponseWriter, r *http.Request, c call) error {
	st, err := s.svc.Status()
	if err != nil {
		return err
	}
	history := r.URL.Query().Has("history")
	out := make(obj, 0, len(st.Pools))
	for _, p := range st.Pools {
		po := obj{{"size", p.Max}, {"ready", p.Ready}}
		if history {
			po = append(po, kv{"history", []int{p.Ready}})
		}
		out = append(out, kv{p.Name, po})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// majorRe is upstream's pool "major": the name up to its first '-'.
var majorRe = regexp.MustCompile(`^(\w+)-`)

// poolMajor returns a pool's upstream "major" name. Upstream leaves a
// name without "<word>-" under the previous pool's major (or null); this
// pooler uses the whole name.
func poolMajor(name string) string {
	if m := majorRe.FindStringSubmatch(name); m != nil {
		return m[1]
	}
	return name
}

// handleStatsRunning answers upstream's GET /dashboard/stats/vmpooler/running:
// running VMs summed by pool major, {"<major>":{"running":n}}, no "ok" key.
// Upstream adds history only from Graphite, so ?history changes nothing.
func (s *server) handleStatsRunning(w http.ResponseWriter, r *http.Request, c call) error {
	st, err := s.svc.Status()
	if err != nil {
		return err
	}
	var out obj
	index := map[string]int{}
	for _, p := range st.Pools {
		m := poolMajor(p.Name)
		i, ok := index[m]
		if !ok {
			i, index[m] = len(out), len(out)
			out = append(out, kv{m, 0})
		}
		out[i].v = out[i].v.(int) + p.Running
	}
	for i := range out {
		out[i].v = obj{{"running", out[i].v}}
	}
	if out == nil {
		out = obj{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// viewer is who asks for dashboard data: whether authentication is on,
// whether the caller holds a valid token, and whether user names (and,
// with dashboard_public = false, the running list) may be shown.
type viewer struct {
	auth, loggedIn bool
	user           string
}

func (s *server) viewer(r *http.Request) (viewer, error) {
	c, err := s.caller(r, false)
	if err != nil {
		return viewer{}, err
	}
	return viewer{auth: c.Auth, loggedIn: c.User != "", user: c.User}, nil
}

// showUsers: user names are shown when authentication is off (there are
// none) or to a caller with a valid token.
func (v viewer) showUsers() bool { return !v.auth || v.loggedIn }

// public reports whether the running list is open to callers without a
// token: always with authentication off, else unless dashboard_public = false.
func (s *server) public() bool { return !s.cfg.DashboardPrivate }

// handleDashboardInfo answers GET /dashboard/info: what the page needs
// besides /status: the pools' templates and sizes in force, task_limit,
// the server's date (history ranges end there, whatever the browser's
// clock says) and who the caller is.
func (s *server) handleDashboardInfo(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.viewer(r)
	if err != nil {
		return err
	}
	pools, err := s.svc.Effective()
	if err != nil {
		return err
	}
	list := make([]obj, len(pools))
	for i, p := range pools {
		alias := []string(p.Alias)
		if alias == nil {
			alias = []string{}
		}
		list[i] = obj{{"name", p.Name}, {"template", p.Template}, {"size", p.Size}, {"alias", alias}}
	}
	now := s.now().UTC()
	cfg := s.svc.Current()
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {"site_name", s.cfg.SiteName},
		{"now", now.Format(time.RFC3339)}, {"today", now.Format(time.DateOnly)},
		{"task_limit", cfg.TaskLimit}, {"auth", v.auth}, {"public", !v.auth || s.public()},
		{"logged_in", v.loggedIn}, {"user", v.user}, {"pools", list}})
	return nil
}

// maxDashboardRunning bounds the running VMs one /dashboard/running lists
// (those closest to the end of their lifetime first); "count" has them all.
const maxDashboardRunning = 2000

// handleDashboardRunning answers GET /dashboard/running: the running VMs
// (hostname, pool, user, tags, lifetime and time left) and the pending
// ondemand requests. With authentication on, user names are shown only to
// a caller with a valid token, and with dashboard_public = false the whole
// list needs one (401).
func (s *server) handleDashboardRunning(w http.ResponseWriter, r *http.Request, c call) error {
	v, err := s.viewer(r)
	if err != nil {
		return err
	}
	if v.auth && !s.public() && !v.loggedIn {
		return errs.Errorf(errs.EUNAUTHORIZED, "the running list needs a token (dashboard_public = false)")
	}
	cfg := s.svc.Current()
	now := s.now()
	type row struct {
		vm  store.VM
		end time.Time
	}
	var rows []row
	for _, p := range cfg.Pools {
		vms, err := s.st.List(p.Name, store.StateRunning)
		if err != nil {
			return err
		}
		for _, vm := range vms {
			rows = append(rows, row{vm, vm.CheckedOut.Add(pool.Hours(cfg.Lifetime(vm.Lifetime)))})
		}
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(a.end.Compare(b.end), strings.Compare(a.vm.Hostname, b.vm.Hostname))
	})
	count := len(rows)
	rows = rows[:min(count, maxDashboardRunning)]
	list := make([]obj, len(rows))
	for i, rw := range rows {
		vm := rw.vm
		tags := vm.Tags
		if tags == nil {
			tags = map[string]string{}
		}
		o := obj{{"hostname", s.hostname(c.v, vm.Hostname, vm.Pool)}, {"pool", vm.Pool}}
		if v.showUsers() {
			o = append(o, kv{"user", vm.User})
		}
		list[i] = append(o, kv{"tags", tags}, kv{"lifetime", cfg.Lifetime(vm.Lifetime)},
			kv{"checked_out", vm.CheckedOut.UTC().Format(time.RFC3339)}, kv{"end_time", rw.end.UTC().Format(time.RFC3339)},
			kv{"remaining", hoursOf(rw.end.Sub(now))}, kv{"request_id", vm.RequestID})
	}
	ondemand, err := s.dashboardOndemand(v, now)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {"users_shown", v.showUsers()}, {"count", count},
		{"truncated", count > len(rows)}, {"running", list}, {"ondemand", ondemand}})
	return nil
}

// hoursOf is a duration in hours, 2 dp, never -0.
func hoursOf(d time.Duration) float64 {
	h := round(d.Hours(), 2)
	if h == 0 {
		return 0
	}
	return h
}

// dashboardOndemand lists the pending ondemand requests, oldest first,
// with what each asked for and what it has so far.
func (s *server) dashboardOndemand(v viewer, now time.Time) ([]obj, error) {
	reqs, err := s.st.PendingRequests()
	if err != nil {
		return nil, err
	}
	out := make([]obj, 0, len(reqs))
	for _, rq := range reqs {
		want := map[string]int{}
		var order []string
		for _, pc := range rq.Requested {
			if _, ok := want[pc.Pool]; !ok {
				order = append(order, pc.Pool)
			}
			want[pc.Pool] += pc.Count
		}
		pools := make([]obj, len(order))
		for i, p := range order {
			pools[i] = obj{{"pool", p}, {"wanted", want[p]}, {"delivered", len(rq.Hosts[p])}}
		}
		o := obj{{"request_id", rq.ID}, {"state", rq.State}, {"created", rq.Created.UTC().Format(time.RFC3339)},
			{"age", round(now.Sub(rq.Created).Seconds(), 0)}, {"pools", pools}}
		if v.showUsers() {
			o = append(o, kv{"user", rq.User})
		}
		out = append(out, o)
	}
	return out, nil
}

// Dashboard history ranges: 7, 30 or 90 days as the page offers, or any
// number of days up to maxHistoryDays; at most maxTagValues values per tag
// (the most used), the rest summed as "(other)".
const (
	maxHistoryDays = 366
	maxTagValues   = 10
)

// handleDashboardHistory answers GET /dashboard/history?days=n: for each of
// the last n days up to the server's today, the clone and boot counts and
// durations (average, min, max in seconds) overall and per pool, and the
// tag counts over the range. It reads the same rollups as /summary.
func (s *server) handleDashboardHistory(w http.ResponseWriter, r *http.Request, c call) error {
	days := 30
	if q := r.URL.Query(); q.Has("days") {
		n, err := strconv.Atoi(q.Get("days"))
		if err != nil || n < 1 || n > maxHistoryDays {
			return errs.Errorf(errs.EINVALID, "days must be a whole number from 1 to %d", maxHistoryDays)
		}
		days = n
	}
	release, err := s.summarySlot(w, r)
	if err != nil {
		return err
	}
	defer release()
	today := s.now().UTC()
	from := today.AddDate(0, 0, 1-days).Format(time.DateOnly)
	to := today.Format(time.DateOnly)
	rollups, err := s.svc.Rollups(from, to)
	if err != nil {
		return err
	}
	daily := make([]obj, len(rollups))
	for i, d := range rollups {
		daily[i] = obj{{"date", d.Date}, {"clone", historyTask(d.Clone)}, {"boot", historyTask(d.Boot)}}
	}
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {"from", from}, {"to", to}, {"days", daily}, {"tags", topTags(pool.SumTags(rollups))}})
	return nil
}

// historyTask is one day's clones or boots: {"all":{...},"pools":{"<pool>":{...}}}.
func historyTask(m map[string]store.Durations) obj {
	names := slices.Sorted(maps.Keys(m))
	pools := make(obj, 0, len(names))
	for _, p := range names {
		pools = append(pools, kv{p, historyDurations(m[p])})
	}
	return obj{{"all", historyDurations(pool.MergeDurations(m))}, {"pools", pools}}
}

func historyDurations(d store.Durations) obj {
	t := toDurations(d)
	return obj{{"count", d.Count}, {"average", t.Average}, {"min", t.Min}, {"max", t.Max}}
}

// topTags writes each tag's most used values, most used first:
// {"<tag>":{"total":n,"values":[["<value>",n],...]}}.
func topTags(tags map[string]map[string]int) obj {
	out := make(obj, 0, len(tags))
	for _, t := range slices.Sorted(maps.Keys(tags)) {
		type vc struct {
			v string
			n int
		}
		var vals []vc
		total := 0
		for v, n := range tags[t] {
			vals = append(vals, vc{v, n})
			total += n
		}
		slices.SortFunc(vals, func(a, b vc) int { return cmp.Or(b.n-a.n, strings.Compare(a.v, b.v)) })
		list := make([][]any, 0, min(len(vals), maxTagValues+1))
		other := 0
		for i, x := range vals {
			if i < maxTagValues {
				list = append(list, []any{x.v, x.n})
			} else {
				other += x.n
			}
		}
		if other > 0 {
			list = append(list, []any{"(other)", other})
		}
		out = append(out, kv{t, obj{{"total", total}, {"values", list}}})
	}
	return out
}
