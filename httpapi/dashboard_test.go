package httpapi

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// get fetches path without following redirects and returns the answer raw.
func (e *env) get(path string) (*http.Response, string) {
	e.tb.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return e.roundTrip(client, e.request("GET", path, nil))
}

func TestDashboardRootRedirects(t *testing.T) {
	e := mustEnv(t, envOptions{})
	res, body := e.get("/")
	want(t, "status", res.StatusCode, http.StatusFound)
	want(t, "Location", res.Header.Get("Location"), "/dashboard/")
	want(t, "body", body, "")
}

// The page is one self-contained HTML answer: its script and style
// inlined and allowed by hash, nothing loaded from elsewhere, well under
// 150 KB.
func TestDashboardPage(t *testing.T) {
	e := mustEnv(t, envOptions{})
	for _, path := range []string{"/dashboard", "/dashboard/"} {
		res, body := e.get(path)
		want(t, path+" status", res.StatusCode, 200)
		want(t, path+" Content-Type", res.Header.Get("Content-Type"), "text/html; charset=utf-8")
		if len(body) >= 150<<10 || len(body) != DashboardPageBytes() {
			t.Errorf("%s: %d bytes (DashboardPageBytes %d), want under 150 KB", path, len(body), DashboardPageBytes())
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, tag := range []string{"script", "style"} {
			m := regexp.MustCompile(`(?s)<`+tag+`>(.*?)</`+tag+`>`).FindAllStringSubmatch(body, -1)
			if len(m) != 1 {
				t.Fatalf("%s: %d inline <%s> elements, want 1", path, len(m), tag)
			}
			sum := sha256.Sum256([]byte(m[0][1]))
			if h := "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, tag+"-src "+h) {
				t.Errorf("%s: CSP %q does not allow the inline %s (%s)", path, csp, tag, h)
			}
		}
		if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//[^"]*"|@import|url\(`).FindString(body); m != "" {
			t.Errorf("%s loads something from elsewhere: %s", path, m)
		}
		if strings.Contains(body, "<!--SCRIPT-->") || strings.Contains(body, "<!--STYLE-->") {
			t.Errorf("%s: a placeholder was not replaced", path)
		}
	}
}

// Upstream's /dashboard/stats/vmpooler/pool: {"<pool>":{"size","ready"}},
// with ?history "history":[ready] (upstream without Graphite), no "ok".
func TestDashboardStatsPool(t *testing.T) {
	e := mustEnv(t, envOptions{})
	e.addReady("debian-7-i386", "r1", "r2", "r3")
	e.addReady("centos-6-x86_64", "r4")
	pools := []struct {
		name        string
		size, ready int
	}{{"debian-7-i386", 5, 3}, {"debian-7-x86_64", 3, 0}, {"centos-6-x86_64", 2, 1}, {"centos-7.2-x86_64", 0, 0}}
	for _, history := range []bool{false, true} {
		var b strings.Builder
		b.WriteString("{")
		for i, p := range pools {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "\n  %q: {\n    \"size\": %d,\n    \"ready\": %d", p.name, p.size, p.ready)
			if history {
				fmt.Fprintf(&b, ",\n    \"history\": [\n      %d\n    ]", p.ready)
			}
			b.WriteString("\n  }")
		}
		b.WriteString("\n}\n")
		path := "/dashboard/stats/vmpooler/pool"
		if history {
			path += "?history=true"
		}
		r := e.do(req{method: "GET", path: path})
		want(t, path+" status", r.status, 200)
		want(t, path, r.raw, b.String())
	}
}

// Upstream's /dashboard/stats/vmpooler/running sums running VMs by the
// pool name up to its first '-'; a name without one stands for itself.
func TestDashboardStatsRunning(t *testing.T) {
	e := mustEnv(t, envOptions{})
	e.addReady("debian-7-i386", "r1", "r2")
	e.addReady("debian-7-x86_64", "r3")
	for _, p := range []string{"debian-7-i386", "debian-7-i386", "debian-7-x86_64"} {
		if r := e.do(req{method: "POST", path: "/api/v1/vm/" + p}); r.status != 200 {
			t.Fatalf("checkout %s: %d %s", p, r.status, r.raw)
		}
	}
	r := e.do(req{method: "GET", path: "/dashboard/stats/vmpooler/running?history=1"})
	want(t, "status", r.status, 200)
	want(t, "body", r.raw, "{\n  \"debian\": {\n    \"running\": 3\n  },\n  \"centos\": {\n    \"running\": 0\n  }\n}\n")
	for name, major := range map[string]string{"pool-1": "pool", "diffpool-1": "diffpool", "centos-7.2-x86_64": "centos",
		"win.2019-x": "win.2019-x", "solo": "solo", "-x": "-x"} {
		want(t, "poolMajor("+name+")", poolMajor(name), major)
	}
}

func TestDashboardInfo(t *testing.T) {
	e := mustEnv(t, envOptions{})
	r := e.do(req{method: "GET", path: "/api/v1/dashboard/info"})
	want(t, "status", r.status, 200)
	want(t, "today", r.body["today"], "2015-03-11")
	want(t, "task_limit", r.body["task_limit"], 10.0)
	want(t, "auth", r.body["auth"], false)
	want(t, "public", r.body["public"], true)
	pools := r.body["pools"].([]any)
	want(t, "pools", len(pools), 4)
	want(t, "pool 1", pools[1], map[string]any{"name": "debian-7-x86_64", "template": "templates/debian-7-x86_64",
		"size": 3.0, "alias": []any{"debian-7-64", "debian-7-amd64"}})
}

// runningUsers returns the "user" of each listed running VM (absent: "-").
func runningUsers(r resp) []string {
	var out []string
	for _, v := range r.body["running"].([]any) {
		u, ok := v.(map[string]any)["user"].(string)
		if !ok {
			u = "-"
		}
		out = append(out, u)
	}
	return out
}

// With [auth] on, user names in the running list (and the ondemand
// requests) go only to a caller with a valid token; with dashboard_public
// = false the list needs one. Without auth nothing is hidden.
func TestDashboardRunningPrivacy(t *testing.T) {
	t.Run("auth off", func(t *testing.T) {
		e := mustEnv(t, envOptions{})
		e.addReady("debian-7-i386", "r1")
		e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386"})
		r := e.do(req{method: "GET", path: "/api/v1/dashboard/running"})
		want(t, "users_shown", r.body["users_shown"], true)
		want(t, "users", runningUsers(r), []string{""})
	})
	t.Run("public", func(t *testing.T) {
		e := mustEnv(t, envOptions{auth: true})
		e.addReady("debian-7-i386", "r1")
		tok := e.token("jdoe")
		e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: tok})
		e.do(req{method: "POST", path: "/api/v1/ondemandvm", body: `{"debian-7-x86_64":"2","request_id":"req-1"}`, token: tok})
		for _, c := range []struct {
			name, token string
			shown       bool
		}{{"anonymous", "", false}, {"bad token", strings.Repeat("z", 32), false}, {"token", tok, true}} {
			r := e.do(req{method: "GET", path: "/api/v1/dashboard/running", token: c.token})
			want(t, c.name+" status", r.status, 200)
			want(t, c.name+" users_shown", r.body["users_shown"], c.shown)
			wantUser := map[bool]string{false: "-", true: "jdoe"}[c.shown]
			want(t, c.name+" users", runningUsers(r), []string{wantUser})
			od := r.body["ondemand"].([]any)
			if len(od) != 1 {
				t.Fatalf("%s: ondemand %v", c.name, od)
			}
			u, ok := od[0].(map[string]any)["user"]
			want(t, c.name+" ondemand user shown", ok, c.shown)
			if ok {
				want(t, c.name+" ondemand user", u, "jdoe")
			}
			info := e.do(req{method: "GET", path: "/api/v1/dashboard/info", token: c.token})
			want(t, c.name+" logged_in", info.body["logged_in"], c.shown)
		}
	})
	t.Run("private", func(t *testing.T) {
		e := mustEnv(t, envOptions{auth: true, private: true})
		e.addReady("debian-7-i386", "r1")
		tok := e.token("jdoe")
		e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: tok})
		r := e.do(req{method: "GET", path: "/api/v1/dashboard/running"})
		want(t, "anonymous status", r.status, 401)
		want(t, "anonymous ok", r.body["ok"], false)
		want(t, "info public", e.do(req{method: "GET", path: "/api/v1/dashboard/info"}).body["public"], false)
		r = e.do(req{method: "GET", path: "/api/v1/dashboard/running", token: tok})
		want(t, "token status", r.status, 200)
		want(t, "token users", runningUsers(r), []string{"jdoe"})
		// pool numbers stay public
		want(t, "stats", e.do(req{method: "GET", path: "/dashboard/stats/vmpooler/running"}).body["debian"], map[string]any{"running": 1.0})
	})
}

// The running list: each VM's pool, tags, lifetime and time left (from
// the server's clock), soonest to end first, hostnames as the version
// writes them; pending ondemand requests with what they have.
func TestDashboardRunningList(t *testing.T) {
	e := mustEnv(t, envOptions{})
	e.addReady("debian-7-i386", "r1", "r2")
	e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386"})
	e.do(req{method: "PUT", path: "/api/v1/vm/r1", body: `{"lifetime":2,"tags":{"project":"demo"}}`})
	e.clock.Advance(30 * time.Minute)
	e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386"})
	r := e.do(req{method: "GET", path: "/api/v3/dashboard/running"})
	want(t, "count", r.body["count"], 2.0)
	want(t, "truncated", r.body["truncated"], false)
	list := r.body["running"].([]any)
	first, second := list[0].(map[string]any), list[1].(map[string]any)
	want(t, "first", first["hostname"], "r1.company.com")
	want(t, "first tags", first["tags"], map[string]any{"project": "demo"})
	want(t, "first lifetime", first["lifetime"], 2.0)
	want(t, "first remaining", first["remaining"], 1.5)
	want(t, "second", second["hostname"], "r2.company.com")
	want(t, "second remaining", second["remaining"], 12.0)
	want(t, "second tags", second["tags"], map[string]any{})
	want(t, "second end_time", second["end_time"], "2015-03-11T22:32:10Z")

	e.do(req{method: "POST", path: "/api/v1/ondemandvm", body: `{"debian-7-x86_64":"2","debian-7-64":1,"request_id":"req-9"}`})
	e.deliver("req-9", "debian-7-x86_64", "od1")
	e.clock.Advance(90 * time.Second)
	od := e.do(req{method: "GET", path: "/api/v1/dashboard/running"}).body["ondemand"].([]any)
	want(t, "ondemand", od, []any{map[string]any{"request_id": "req-9", "state": "pending", "created": "2015-03-11T10:32:10Z",
		"age": 90.0, "pools": []any{map[string]any{"pool": "debian-7-x86_64", "wanted": 3.0, "delivered": 1.0}}, "user": ""}})
}

// History: per day, clones and boots overall and per pool, and the tags
// of the range, ending at the server's today; bad ranges are 400 JSON.
func TestDashboardHistory(t *testing.T) {
	e := mustEnv(t, envOptions{})
	e.addReady("debian-7-i386", "a1", "a2") // 2015-03-11: clones of 5 s, boots of 60 s
	e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386"})
	e.do(req{method: "PUT", path: "/api/v1/vm/a1", body: `{"tags":{"project":"demo"}}`})
	e.clock.Advance(24 * time.Hour)
	e.addReady("debian-7-x86_64", "b1")
	r := e.do(req{method: "GET", path: "/api/v1/dashboard/history?days=7"})
	want(t, "status", r.status, 200)
	want(t, "from", r.body["from"], "2015-03-06")
	want(t, "to", r.body["to"], "2015-03-12")
	days := r.body["days"].([]any)
	want(t, "days", len(days), 7)
	d11, d12 := days[5].(map[string]any), days[6].(map[string]any)
	want(t, "date", d11["date"], "2015-03-11")
	stat := func(n, avg float64) map[string]any {
		return map[string]any{"count": n, "average": avg, "min": avg, "max": avg}
	}
	want(t, "11 clone", d11["clone"], map[string]any{"all": stat(2, 5), "pools": map[string]any{"debian-7-i386": stat(2, 5)}})
	want(t, "11 boot", d11["boot"], map[string]any{"all": stat(2, 60), "pools": map[string]any{"debian-7-i386": stat(2, 60)}})
	want(t, "12 clone", d12["clone"], map[string]any{"all": stat(1, 5), "pools": map[string]any{"debian-7-x86_64": stat(1, 5)}})
	want(t, "empty day", days[0].(map[string]any)["clone"], map[string]any{"all": stat(0, 0), "pools": map[string]any{}})
	want(t, "tags", r.body["tags"], map[string]any{"project": map[string]any{"total": 1.0, "values": []any{[]any{"demo", 1.0}}}})
	if n := len(e.do(req{method: "GET", path: "/dashboard/history"}).body["days"].([]any)); n != 30 {
		t.Errorf("default range: %d days, want 30", n)
	}
	for _, bad := range []string{"0", "-1", "367", "x", "1.5", ""} {
		r := e.do(req{method: "GET", path: "/api/v1/dashboard/history?days=" + bad})
		want(t, "days="+bad+" status", r.status, 400)
		want(t, "days="+bad+" ok", r.body["ok"], false)
	}
}

// topTags keeps the most used values of each tag and sums the rest.
func TestDashboardTopTags(t *testing.T) {
	vals := map[string]int{}
	for i := range 13 {
		vals[fmt.Sprintf("v%02d", i)] = i + 1
	}
	got := topTags(map[string]map[string]int{"b": vals, "a": {"x": 1}})
	want(t, "names", []string{got[0].k, got[1].k}, []string{"a", "b"})
	b := got[1].v.(obj)
	want(t, "total", b[0].v, 91)
	list := b[1].v.([][]any)
	want(t, "len", len(list), maxTagValues+1)
	want(t, "first", list[0], []any{"v12", 13})
	want(t, "other", list[maxTagValues], []any{"(other)", 1 + 2 + 3})
}
