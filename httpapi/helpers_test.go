package httpapi

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func TestMain(m *testing.M) {
	time.Local = time.UTC // golden files hold times in UTC whatever the machine's zone
	os.Exit(m.Run())
}

// env is a running API on a real store.
type env struct {
	tb    testing.TB
	srv   *httptest.Server
	st    *store.Store
	svc   *pool.Service
	auth  *auth.Auth
	clock *clocktest.Clock
	cfg   *pool.Config
	prov  *pool.FakeProvider // svc.Templates
}

type envOptions struct {
	auth         bool
	allowedTags  []string
	tagFilter    map[string]string
	realClock    bool
	dir          string       // where the database goes ("" = a test temp dir)
	experimental bool         // experimental_features: /config writes and /poolreset
	redacted     any          // Config.Redacted
	metrics      *Metrics     // Config.Metrics
	audit        io.Writer    // Config.Audit, as JSON lines
	trusted      []string     // Config.TrustedProxies
	admins       []string     // [auth] admins (with auth)
	tokenTTL     float64      // [auth] token_ttl, days (with auth)
	authCfg      *auth.Config // replaces the dummy [auth] section
	private      bool         // Config.DashboardPrivate
}

func testConfig() *pool.Config {
	cfg := &pool.Config{
		Domain:                "company.com",
		VMLifetime:            12,
		VMLifetimeAuth:        24,
		MaxLifetimeUpperLimit: 168,
		Pools: []pool.PoolConfig{
			{Name: "debian-7-i386", Alias: pool.Aliases{"debian-7-32"}, Template: "templates/debian-7-i386", Size: 5},
			{Name: "debian-7-x86_64", Alias: pool.Aliases{"debian-7-64", "debian-7-amd64"}, Template: "templates/debian-7-x86_64", Size: 3},
			{Name: "centos-6-x86_64", Alias: pool.Aliases{"el-6-64", "debian-7-64"}, Template: "templates/centos-6-x86_64", Size: 2},
			{Name: "centos-7.2-x86_64", Template: "templates/centos-7.2-x86_64", Size: 0, Domain: "other.example"},
		},
	}
	cfg.Defaults()
	return cfg
}

// mustEnv starts the API on a fresh store (clock at 2015-03-11 10:00 UTC
// unless realClock) and closes both on cleanup.
func mustEnv(tb testing.TB, o envOptions) *env {
	tb.Helper()
	clk := clocktest.New(time.Date(2015, 3, 11, 10, 0, 0, 0, time.UTC))
	now := clk.Now
	if o.realClock {
		now = time.Now
	}
	dir := o.dir
	if dir == "" {
		dir = tb.TempDir()
	} else {
		var err error
		if dir, err = os.MkdirTemp(dir, "vmpooler-bench"); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(dir) })
	}
	st := storetest.MustOpen(tb, storetest.Path(filepath.Join(dir, "db")), storetest.Now(now))
	cfg := testConfig()
	cfg.AllowedTags = o.allowedTags
	cfg.ExperimentalFeatures = o.experimental
	svc := pool.NewService(cfg, st, nil)
	svc.SetConfig(cfg, o.tagFilter)
	svc.Now = now
	prov := pool.NewFakeProvider() // answers template_ready
	svc.Templates = prov
	var acfg *auth.Config
	if o.auth {
		acfg = &auth.Config{Provider: auth.ProviderDummy, Admins: o.admins, TokenTTL: o.tokenTTL}
	}
	if o.authCfg != nil {
		acfg = o.authCfg
	}
	a, err := auth.New(acfg, st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	a.Now = now
	var audit *slog.Logger
	if o.audit != nil {
		audit = slog.New(slog.NewJSONHandler(o.audit, nil))
	}
	srv := httptest.NewServer(New(Config{Redacted: o.redacted, Metrics: o.metrics, Audit: audit, TrustedProxies: o.trusted,
		DashboardPrivate: o.private}, svc, a, st, nil))
	tb.Cleanup(srv.Close)
	return &env{tb: tb, srv: srv, st: st, svc: svc, auth: a, clock: clk, cfg: cfg, prov: prov}
}

// addReady puts ready VMs into a pool: cloned after 5 s, ready after 60 s more.
func (e *env) addReady(poolName string, hosts ...string) {
	e.tb.Helper()
	for _, h := range hosts {
		if err := e.st.AddPending(store.VM{Hostname: h, Pool: poolName, Template: "templates/" + poolName}); err != nil {
			e.tb.Fatal(err)
		}
		e.clock.Advance(5 * time.Second)
		if err := e.st.MarkCloned(h); err != nil {
			e.tb.Fatal(err)
		}
		e.clock.Advance(60 * time.Second)
		if err := e.st.MarkReady(h, "10.0.0.1"); err != nil {
			e.tb.Fatal(err)
		}
	}
	e.svc.InvalidateStatus()
}

// finishJobs does what the manager does with queued jobs: mark them done.
func (e *env) finishJobs() {
	e.tb.Helper()
	jobs, err := e.st.Jobs()
	if err != nil {
		e.tb.Fatal(err)
	}
	for _, j := range jobs {
		if err := e.st.FinishJob(j.ID, nil); err != nil {
			e.tb.Fatal(err)
		}
	}
}

// req is one request of a test.
type req struct {
	method, path, body string
	token              string // X-AUTH-TOKEN
	user, password     string // HTTP Basic
}

// request is a request to the test server.
func (e *env) request(method, path string, body io.Reader) *http.Request {
	e.tb.Helper()
	hr, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.tb.Fatal(err)
	}
	return hr
}

// roundTrip sends hr with client and returns the answer and its whole body.
func (e *env) roundTrip(client *http.Client, hr *http.Request) (*http.Response, string) {
	e.tb.Helper()
	res, err := client.Do(hr)
	if err != nil {
		e.tb.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		e.tb.Fatal(err)
	}
	return res, string(data)
}

// resp is an answer, its body decoded.
type resp struct {
	status int
	header http.Header
	raw    string
	body   map[string]any
}

func (e *env) do(r req) resp {
	e.tb.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr := e.request(r.method, r.path, body)
	if r.body != "" {
		hr.Header.Set("Content-Type", "application/x-www-form-urlencoded") // as curl -d and floaty
	}
	if r.token != "" {
		hr.Header.Set("X-AUTH-TOKEN", r.token)
	}
	if r.user != "" {
		hr.SetBasicAuth(r.user, r.password)
	}
	res, data := e.roundTrip(http.DefaultClient, hr)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		e.tb.Errorf("%s %s: Content-Type %q, want application/json", r.method, r.path, ct)
	}
	out := resp{status: res.StatusCode, header: res.Header, raw: data}
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		e.tb.Fatalf("%s %s: body is not JSON: %v\n%s", r.method, r.path, err, data)
	}
	out.body, _ = v.(map[string]any)
	return out
}

var (
	reToken = regexp.MustCompile(`\b[a-y][a-z0-9]{31}\b`)
	reUID   = regexp.MustCompile(`"uptime": [0-9.]+`)
	reUUID  = regexp.MustCompile(`\b[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\b`)
)

// normalise replaces what is random in an answer (tokens, snapshot names,
// request ids).
func normalise(s string) string {
	s = reToken.ReplaceAllString(s, "<32 random chars>")
	s = reUUID.ReplaceAllString(s, "<uuid>")
	return reUID.ReplaceAllString(s, `"uptime": <seconds>`)
}

// transcript records exchanges for a golden file.
type transcript struct {
	bytes.Buffer
}

func (t *transcript) add(r req, res resp) {
	fmt.Fprintf(t, "### %s %s", r.method, r.path)
	if r.body != "" {
		fmt.Fprintf(t, " %s", r.body)
	}
	if r.token != "" {
		t.WriteString(" [X-AUTH-TOKEN]")
	}
	if r.user != "" {
		fmt.Fprintf(t, " [-u %s]", r.user)
	}
	fmt.Fprintf(t, "\n%d\n%s\n", res.status, normalise(res.raw))
}

// golden compares got with testdata/golden/<name>.golden (rewritten with -update).
func golden(tb testing.TB, name, got string) {
	tb.Helper()
	path := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		tb.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
