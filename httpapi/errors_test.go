package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

// errCase is a request and the answer it must get.
type errCase struct {
	name   string
	req    req
	status int
	errHas string // substring of "error", if set
}

func runCases(t *testing.T, e *env, cases []errCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.req)
			if r.status != c.status {
				t.Fatalf("status %d, want %d\n%s", r.status, c.status, r.raw)
			}
			if c.status >= 400 {
				if r.body["ok"] != false {
					t.Errorf("ok = %v, want false", r.body["ok"])
				}
				if msg, _ := r.body["error"].(string); !strings.Contains(msg, c.errHas) {
					t.Errorf("error = %q, want it to contain %q", msg, c.errHas)
				}
			}
			if got := r.header.Get("WWW-Authenticate"); (c.status == 401) != (got != "") {
				t.Errorf("WWW-Authenticate = %q with status %d", got, c.status)
			} else if c.status == 401 && got != `Basic realm="Authentication required"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
		})
	}
}

func TestErrorsNoAuth(t *testing.T) {
	e := mustEnv(t, envOptions{allowedTags: []string{"department", "user", "project"}})
	e.addReady("debian-7-i386", "r1", "r2", "r3")
	e.addReady("debian-7-x86_64", "x1")
	e.addReady("centos-6-x86_64", "c1", "c2")
	if _, err := e.svc.Checkout([]pool.Want{{Name: "debian-7-i386", Count: 1}}, pool.Caller{}); err != nil {
		t.Fatal(err)
	}
	big := `{"debian-7-i386":"` + strings.Repeat("1", MaxBodyBytes) + `"}`
	runCases(t, e, []errCase{
		{"unknown route", req{method: "GET", path: "/nope"}, 404, "no such route"},
		{"unknown route under version", req{method: "GET", path: "/api/v1/nope/x"}, 404, ""},
		{"unknown version", req{method: "GET", path: "/api/v4/vm"}, 404, ""},
		{"method not allowed", req{method: "PATCH", path: "/api/v1/vm"}, 405, "not allowed"},
		{"token routes without auth", req{method: "GET", path: "/api/v1/token"}, 404, "not configured"},
		{"token get without auth", req{method: "GET", path: "/api/v1/token/abc"}, 404, ""},
		{"token post without auth", req{method: "POST", path: "/token"}, 404, ""},
		{"invalid JSON", req{method: "POST", path: "/api/v1/vm", body: `{not json`}, 400, "Invalid JSON"},
		{"trailing data", req{method: "POST", path: "/api/v1/vm", body: `{} {}`}, 400, "Invalid JSON"},
		{"array body", req{method: "POST", path: "/api/v1/vm", body: `["debian-7-i386"]`}, 400, "JSON object"},
		{"body too large", req{method: "POST", path: "/api/v1/vm", body: big}, 413, "too large"},
		{"empty body", req{method: "POST", path: "/api/v1/vm"}, 404, "no pool"},
		{"empty object", req{method: "POST", path: "/api/v1/vm", body: `{}`}, 404, "no pool"},
		{"count zero", req{method: "POST", path: "/api/v1/vm", body: `{"debian-7-i386":"0"}`}, 400, "at least 1"},
		{"count too big", req{method: "POST", path: "/api/v1/vm", body: `{"debian-7-i386":101}`}, 400, "at most 100"},
		{"count not a number", req{method: "POST", path: "/api/v1/vm", body: `{"debian-7-i386":"abc"}`}, 400, "valid integer"},
		{"count fraction", req{method: "POST", path: "/api/v1/vm", body: `{"debian-7-i386":1.5}`}, 400, "valid integer"},
		{"count object", req{method: "POST", path: "/api/v1/vm", body: `{"debian-7-i386":{}}`}, 400, "valid integer"},
		{"unknown pool in body", req{method: "POST", path: "/api/v1/vm", body: `{"nope":"1"}`}, 404, "nope"},
		{"unknown pool in path", req{method: "POST", path: "/api/v1/vm/nope"}, 404, "nope"},
		{"unknown pool among known", req{method: "POST", path: "/api/v1/vm/debian-7-i386+nope"}, 404, "nope"},
		{"too many names in path", req{method: "POST", path: "/api/v1/vm/" + poolList(MaxPoolListNames+1)}, 400, "At most 256 pool names"},
		{"path too long", req{method: "POST", path: "/api/v1/vm/" + strings.Repeat("x", MaxURIBytes)}, 414, "too long"},
		{"query too long", req{method: "GET", path: "/api/v1/summary?from=" + strings.Repeat("x", MaxURIBytes)}, 414, "too long"},
		{"empty name in path", req{method: "POST", path: "/api/v1/vm/debian-7-i386++centos-6-x86_64"}, 400, "required"},
		{"all or nothing", req{method: "POST", path: "/api/v1/vm/debian-7-i386+centos-6-x86_64+centos-6-x86_64+centos-6-x86_64"}, 503, "too few"},
		{"empty pool", req{method: "POST", path: "/api/v1/vm/centos-7.2-x86_64"}, 503, ""},
		{"unknown host", req{method: "GET", path: "/api/v1/vm/nosuchvm"}, 404, ""},
		{"bad host", req{method: "GET", path: "/api/v1/vm/bad!host"}, 400, "hostname"},
		{"bad fqdn", req{method: "GET", path: "/api/v1/vm/r1..company.com"}, 400, "hostname"},
		{"delete ready vm", req{method: "DELETE", path: "/api/v1/vm/r2"}, 404, "not running"},
		{"delete unknown vm", req{method: "DELETE", path: "/api/v1/vm/nosuchvm"}, 404, ""},
		{"put unknown vm", req{method: "PUT", path: "/api/v1/vm/nosuchvm", body: `{"lifetime":2}`}, 404, ""},
		{"put invalid JSON", req{method: "PUT", path: "/api/v1/vm/r1", body: `nope`}, 400, "Invalid JSON"},
		{"put lifetime zero", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"lifetime":"0"}`}, 400, "positive number"},
		{"put lifetime negative", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"lifetime":-3}`}, 400, "positive number"},
		{"put lifetime text", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"lifetime":"soon"}`}, 400, "positive number"},
		{"put lifetime at limit", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"lifetime":168}`}, 400, "maximum of 168"},
		{"put lifetime below limit", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"lifetime":167}`}, 200, ""},
		{"put unknown key", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"color":"red"}`}, 400, "Unknown argument red."},
		{"put tags not a hash", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"tags":"x"}`}, 400, "other than a hash"},
		{"put tag not allowed", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"tags":{"colour":"red"}}`}, 400, "unsupported tags (colour)"},
		{"put tag bad key", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"tags":{"a b":"red"}}`}, 400, "tag key"},
		{"put too many tags", req{method: "PUT", path: "/api/v1/vm/r1", body: manyTags(maxTags + 1)}, 400, "at most 100"},
		{"put tag value too long", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"tags":{"project":"` + strings.Repeat("v", maxTagValue+1) + `"}}`}, 400, "too long"},
		{"put tag key too long", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"tags":{"` + strings.Repeat("k", maxTagKey+1) + `":"x"}}`}, 400, "tag key"},
		{"put tag nested", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"tags":{"project":{"a":1}}}`}, 400, "string value"},
		{"put empty body", req{method: "PUT", path: "/api/v1/vm/r1"}, 200, ""},
		{"put tags, boolean", req{method: "PUT", path: "/api/v1/vm/r1", body: `{"tags":{"project":true}}`}, 200, ""},
		{"snapshot unknown vm", req{method: "POST", path: "/api/v1/vm/nosuchvm/snapshot"}, 404, ""},
		{"revert unknown snapshot", req{method: "POST", path: "/api/v1/vm/r1/snapshot/bogus"}, 404, ""},
		{"disk not a number", req{method: "POST", path: "/api/v1/vm/r1/disk/abc"}, 400, "integer"},
		{"disk too big", req{method: "POST", path: "/api/v1/vm/r1/disk/4096"}, 400, "2048"},
		{"disk", req{method: "POST", path: "/api/v1/vm/r1/disk/8"}, 202, ""},
		{"summary bad date", req{method: "GET", path: "/api/v1/summary?from=bogus"}, 400, "Invalid date format 'bogus'"},
		{"summary to before from", req{method: "GET", path: "/api/v1/summary?from=2015-03-10&to=2015-03-01"}, 400, "cannot come before"},
		{"summary future", req{method: "GET", path: "/api/v1/summary?from=2016-01-01&to=2016-01-02"}, 400, "in the past"},
		{"summary section", req{method: "GET", path: "/api/v1/summary/nope"}, 404, "nope"},
		{"summary key", req{method: "GET", path: "/api/v1/summary/boot/nope"}, 404, "nope"},
		{"trailing slash", req{method: "GET", path: "/api/v1/status/"}, 200, ""},
		{"double slashes", req{method: "POST", path: "//vm/", body: `{"debian-7-i386":"1"}`}, 200, ""},
	})
	t.Run("all or nothing changed nothing", func(t *testing.T) {
		c := e.st.Counts()
		if got := c["centos-6-x86_64"].Ready; got != 2 {
			t.Errorf("centos ready = %d, want 2", got)
		}
	})
	t.Run("alias spreads over pools", func(t *testing.T) {
		// debian-7-64 stands for debian-7-x86_64 (1 ready) and centos-6-x86_64 (2 ready).
		r := e.do(req{method: "POST", path: "/api/v1/vm/debian-7-64+debian-7-64+debian-7-64"})
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.raw)
		}
		if h, _ := hostnames(r, "debian-7-64").([]any); len(h) != 3 {
			t.Errorf("hostnames = %v, want 3", h)
		}
	})
}

func TestErrorsAuth(t *testing.T) {
	e := mustEnv(t, envOptions{auth: true})
	e.addReady("debian-7-i386", "r1", "r2", "r3", "r4")
	jdoe := e.token("jdoe")
	alice := e.token("alice")
	checkout := func(tok string) string {
		r := e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: tok})
		if r.status != 200 {
			t.Fatalf("checkout: %d %s", r.status, r.raw)
		}
		return hostnames(r, "debian-7-i386").(string)
	}
	mine, anon := checkout(jdoe), checkout("")
	runCases(t, e, []errCase{
		{"token list no credentials", req{method: "GET", path: "/api/v1/token"}, 401, ""},
		{"token list bad credentials", req{method: "GET", path: "/api/v1/token", user: "jdoe", password: "jdoe"}, 401, ""},
		{"token create bad credentials", req{method: "POST", path: "/api/v1/token", user: "jdoe", password: "jdoe"}, 401, ""},
		{"token list none", req{method: "GET", path: "/api/v1/token", user: "bob", password: "pw"}, 404, "no tokens"},
		{"token get unknown", req{method: "GET", path: "/api/v1/token/nosuchtoken"}, 404, ""},
		{"token delete no credentials", req{method: "DELETE", path: "/api/v1/token/" + jdoe}, 401, ""},
		{"token delete other user's", req{method: "DELETE", path: "/api/v1/token/" + jdoe, user: "alice", password: "pw"}, 403, "another user"},
		{"token delete unknown", req{method: "DELETE", path: "/api/v1/token/nosuchtoken", user: "jdoe", password: "pw"}, 401, ""},
		{"checkout invalid token", req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: "notavalidtoken"}, 401, ""},
		{"lifetime without token", req{method: "PUT", path: "/api/v1/vm/" + anon, body: `{"lifetime":"2"}`}, 401, "token"},
		{"lifetime invalid token", req{method: "PUT", path: "/api/v1/vm/" + anon, body: `{"lifetime":"2"}`, token: "nope"}, 401, "token"},
		{"lifetime anon vm any token", req{method: "PUT", path: "/api/v1/vm/" + anon, body: `{"lifetime":"2"}`, token: alice}, 200, ""},
		{"lifetime other user's vm", req{method: "PUT", path: "/api/v1/vm/" + mine, body: `{"lifetime":"2"}`, token: alice}, 403, "another user"},
		{"lifetime own vm", req{method: "PUT", path: "/api/v1/vm/" + mine, body: `{"lifetime":"2"}`, token: jdoe}, 200, ""},
		// Tags alone need no token, as upstream: beaker tags the VMs it
		// checked out with a token without sending one (DESIGN: only a
		// return, a lifetime or a snapshot needs the owner's token).
		{"tags without token", req{method: "PUT", path: "/api/v1/vm/" + mine, body: `{"tags":{"project":"x"}}`}, 200, ""},
		{"tags other user's vm", req{method: "PUT", path: "/api/v1/vm/" + mine, body: `{"tags":{"project":"x"}}`, token: alice}, 200, ""},
		{"tags and lifetime other user's vm", req{method: "PUT", path: "/api/v1/vm/" + mine, body: `{"tags":{"project":"y"},"lifetime":3}`, token: alice}, 403, "another user"},
		{"tags own vm", req{method: "PUT", path: "/api/v1/vm/" + mine, body: `{"tags":{"project":"x"}}`, token: jdoe}, 200, ""},
		{"tags anon vm no token", req{method: "PUT", path: "/api/v1/vm/" + anon, body: `{"tags":{"project":"x"}}`}, 200, ""},
		{"tags ready vm", req{method: "PUT", path: "/api/v1/vm/r3", body: `{"tags":{"project":"x"}}`, token: jdoe}, 404, "not running"},
		{"lifetime ready vm", req{method: "PUT", path: "/api/v1/vm/r3", body: `{"lifetime":"2"}`, token: jdoe}, 404, "not running"},
		{"lifetime past the ceiling", req{method: "PUT", path: "/api/v1/vm/" + mine, body: `{"lifetime":3000000}`, token: jdoe}, 400, "maximum"},
		{"snapshot without token", req{method: "POST", path: "/api/v1/vm/" + anon + "/snapshot"}, 401, "token"},
		{"snapshot invalid token", req{method: "POST", path: "/api/v1/vm/" + anon + "/snapshot", token: "nope"}, 401, ""},
		{"snapshot other user's vm", req{method: "POST", path: "/api/v1/vm/" + mine + "/snapshot", token: alice}, 403, ""},
		{"snapshot own vm", req{method: "POST", path: "/api/v1/vm/" + mine + "/snapshot", token: jdoe}, 202, ""},
		{"revert without token", req{method: "POST", path: "/api/v1/vm/" + mine + "/snapshot/x"}, 401, ""},
		{"disk without token", req{method: "POST", path: "/api/v1/vm/" + mine + "/disk/8"}, 401, ""},
		{"delete token vm without token", req{method: "DELETE", path: "/api/v1/vm/" + mine}, 401, "token"},
		{"delete token vm other user", req{method: "DELETE", path: "/api/v1/vm/" + mine, token: alice}, 403, "another user"},
		{"delete token vm owner", req{method: "DELETE", path: "/api/v1/vm/" + mine, token: jdoe}, 200, ""},
		{"delete anon vm no token", req{method: "DELETE", path: "/api/v1/vm/" + anon}, 200, ""},
	})
	t.Run("token vm gets vm_lifetime_auth", func(t *testing.T) {
		vm, err := e.st.Get(mine)
		if err != nil {
			t.Fatal(err)
		}
		if vm.User != "jdoe" || vm.Lifetime != 2 {
			t.Errorf("user %q lifetime %d, want jdoe 2 (24 at checkout, then PUT 2)", vm.User, vm.Lifetime)
		}
	})
}

// token creates a token for user through the API.
func (e *env) token(user string) string {
	e.tb.Helper()
	r := e.do(req{method: "POST", path: "/api/v1/token", user: user, password: "pw"})
	tok, _ := r.body["token"].(string)
	if r.status != 200 || len(tok) != 32 {
		e.tb.Fatalf("POST /token: %d %s", r.status, r.raw)
	}
	return tok
}

func TestPanicIsJSON(t *testing.T) {
	cfg := testConfig()
	svc := pool.NewService(cfg, nil, nil) // no store: any VM route panics
	srv := httptest.NewServer(New(Config{}, svc, nil, (*store.Store)(nil), nil))
	defer srv.Close()
	e := &env{tb: t, srv: srv}
	r := e.do(req{method: "GET", path: "/api/v1/vm/somevm"})
	if r.status != http.StatusInternalServerError || r.body["ok"] != false || r.body["error"] != "internal error" {
		t.Errorf("got %d %s, want a JSON 500", r.status, r.raw)
	}
}

// manyTags is a PUT body with n distinct tags.
func manyTags(n int) string {
	var b strings.Builder
	b.WriteString(`{"tags":{`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"t%d":"v%d"`, i, i)
	}
	b.WriteString("}}")
	return b.String()
}

// poolList is "x0+x1+...+x<n-1>".
func poolList(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("x%d", i)
	}
	return strings.Join(names, "+")
}

// TestSummarySlots: when every /summary slot is taken, a request waits
// and then gets a JSON 503 rather than adding another answer in memory.
func TestSummarySlots(t *testing.T) {
	s := &server{summary: make(chan struct{}, 1)}
	rec := httptest.NewRecorder()
	release, err := s.summarySlot(rec, httptest.NewRequest("GET", "/summary", nil))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := s.summarySlot(rec, httptest.NewRequest("GET", "/summary", nil).WithContext(ctx)); errs.ErrorCode(err) != errs.EEMPTY {
		t.Errorf("second request with the only slot taken: %v, want EEMPTY", err)
	}
	release()
	if release, err := s.summarySlot(rec, httptest.NewRequest("GET", "/summary", nil)); err != nil {
		t.Errorf("after release: %v", err)
	} else {
		release()
	}
}

// TestHeadAndOptions: HEAD on a GET route is the GET's status and headers
// without a body; OPTIONS lists the methods in Allow and answers JSON.
func TestHeadAndOptions(t *testing.T) {
	e := mustEnv(t, envOptions{})
	for _, path := range []string{"/api/v1/status", "/status", "/api/v3/vm", "/api/v1/summary", "/metrics"} {
		res, err := http.Head(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || len(body) != 0 {
			t.Errorf("HEAD %s: %d with %d bytes, want 200 and no body", path, res.StatusCode, len(body))
		}
	}
	hr, _ := http.NewRequest("OPTIONS", e.srv.URL+"/api/v1/vm/somehost", nil)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	allow := res.Header.Get("Allow")
	for _, m := range []string{"GET", "PUT", "DELETE", "POST", "HEAD", "OPTIONS"} {
		if !strings.Contains(allow, m) {
			t.Errorf("OPTIONS Allow = %q, want %s in it", allow, m)
		}
	}
	var v map[string]any
	if res.StatusCode != 200 || json.Unmarshal(body, &v) != nil || v["ok"] != true || res.Header.Get("Content-Type") != "application/json" {
		t.Errorf("OPTIONS: %d %q %s, want 200 JSON with ok", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	runCases(t, e, []errCase{{"OPTIONS unknown route", req{method: "OPTIONS", path: "/nope"}, 404, ""}})
}

// TestPoolTemplateValidated: POST /config/pooltemplate refuses what the
// config file refuses and templates the provider says are missing, and
// GET /config's template_ready says whether each pool's template exists.
func TestPoolTemplateValidated(t *testing.T) {
	e := mustEnv(t, envOptions{experimental: true})
	e.prov.SetCloneError(func(spec pool.CloneSpec) error {
		if spec.Template == "templates/missing" || spec.Template == "templates/centos-6-x86_64" {
			return fmt.Errorf("template %s: %w", spec.Template, pool.ErrNotFound)
		}
		return nil
	})
	runCases(t, e, []errCase{
		{"no slash", req{method: "POST", path: "/config/pooltemplate", body: `{"debian-7-i386":"noslash"}`}, 400, ""},
		{"dot dot", req{method: "POST", path: "/config/pooltemplate", body: `{"debian-7-i386":"../../x"}`}, 400, ""},
		{"dot element", req{method: "POST", path: "/config/pooltemplate", body: `{"debian-7-i386":"templates/./x"}`}, 400, ""},
		{"missing template", req{method: "POST", path: "/config/pooltemplate", body: `{"debian-7-i386":"templates/missing"}`}, 400, ""},
		{"existing template", req{method: "POST", path: "/config/pooltemplate", body: `{"debian-7-i386":"templates/v2"}`}, 201, ""},
	})
	r := e.do(req{method: "POST", path: "/config/pooltemplate", body: `{"debian-7-i386":"../../x"}`})
	if bad, _ := r.body["bad_templates"].([]any); len(bad) != 1 || bad[0] != "debian-7-i386" {
		t.Errorf("bad_templates = %v, want [debian-7-i386]", r.body["bad_templates"])
	}
	r = e.do(req{method: "GET", path: "/config"})
	ready := map[string]any{}
	for _, p := range r.body["pool_configuration"].([]any) {
		p := p.(map[string]any)
		ready[p["name"].(string)] = p["template_ready"]
	}
	if ready["debian-7-i386"] != true || ready["centos-6-x86_64"] != false {
		t.Errorf("template_ready = %v, want true for debian-7-i386 (templates/v2), false for centos-6-x86_64 (missing)", ready)
	}
}

// TestAdminDeletesAnyToken: a user in [auth] admins may delete another
// user's token; anyone else gets 403.
func TestAdminDeletesAnyToken(t *testing.T) {
	e := mustEnv(t, envOptions{auth: true, admins: []string{"root"}})
	jdoe, other := e.token("jdoe"), e.token("jdoe")
	runCases(t, e, []errCase{
		{"non-admin", req{method: "DELETE", path: "/api/v1/token/" + jdoe, user: "alice", password: "pw"}, 403, "another user"},
		{"admin", req{method: "DELETE", path: "/api/v1/token/" + jdoe, user: "root", password: "pw"}, 200, ""},
		{"deleted token refused", req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: jdoe}, 401, ""},
		{"owner still may", req{method: "DELETE", path: "/api/v1/token/" + other, user: "jdoe", password: "pw"}, 200, ""},
	})
}
