package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/internal/testenv"
	"github.com/vmpooler/vmpooler/store"
)

// findChromium returns a Chromium (or Chrome) binary, or "" when none is
// installed.
func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// seedRollups writes 30 days of history into a new database at path, as
// the manager would have: clones and boots of both pools on most days
// (none on every fifth), and tags on some. It returns the clones per
// date.
func seedRollups(t *testing.T, path string, pools []string) map[string]int {
	t.Helper()
	now := time.Now().UTC()
	clk := clocktest.New(time.Time{})
	st := storetest.MustOpen(t, storetest.Path(path), storetest.Now(clk.Now))
	clones := map[string]int{}
	for back := 29; back >= 1; back-- {
		if back%5 == 0 {
			continue
		}
		day := now.AddDate(0, 0, -back)
		clk.Set(time.Date(day.Year(), day.Month(), day.Day(), 9, 0, 0, 0, time.UTC))
		for pi, p := range pools {
			n := 1 + (back*7+pi*3)%5
			for i := range n {
				host := fmt.Sprintf("seed%02d%d%d", back, pi, i)
				steps := []struct {
					wait time.Duration
					do   func() error
				}{
					{0, func() error { return st.AddPending(store.VM{Hostname: host, Pool: p, Template: "templates/" + p}) }},
					{time.Duration(20+back%7+pi*9) * time.Second, func() error { return st.MarkCloned(host) }},
					{time.Duration(30+(back*3)%11+i) * time.Second, func() error { return st.MarkReady(host, "10.0.0.9") }},
				}
				for _, s := range steps {
					clk.Advance(s.wait)
					if err := s.do(); err != nil {
						t.Fatal(err)
					}
				}
				if back%3 == 0 && i == 0 {
					if _, err := st.Checkout(store.CheckoutRequest{Pools: []store.PoolCount{{Pool: p, Count: 1}}}); err != nil {
						t.Fatal(err)
					}
					project := []string{"alpha", "beta", "gamma"}[back%3+pi]
					if _, err := st.Modify(host, 0, map[string]string{"project": project}); err != nil {
						t.Fatal(err)
					}
				}
				if err := st.Destroy(host, "seeded history"); err != nil {
					t.Fatal(err)
				}
				clones[clk.Now().Format(time.DateOnly)]++
			}
		}
	}
	if err := st.Close(); err != nil { // the pooler opens the file next
		t.Fatal(err)
	}
	return clones
}

// TestDashboardInBrowser loads /dashboard in headless Chromium against the
// pooler on the embedded simulator with two pools and 30 days of seeded
// history: both pools' numbers match /status, a checkout shows up within a
// few seconds, the 30-day chart draws the seeded days, and the page logs
// no console error. It saves a screenshot in the test's temp dir (and to
// $VMPOOLER_DASHBOARD_SCREENSHOT when set, which is how docs/dashboard.png
// is made).
func TestDashboardInBrowser(t *testing.T) {
	testenv.SkipIfShort(t, "starts the simulator and a browser")
	b := newBrowser(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "vmpooler.db")
	pools := []string{"debian-12-x86_64", "centos-9-x86_64"}
	seeded := seedRollups(t, db, pools)
	cfgPath := filepath.Join(dir, "vmpooler.toml")
	writeConfig(t, cfgPath, `
[config]
listen = "127.0.0.1:0"
database = "`+db+`"
domain = "example.com"
check_loop_delay = 1
log_level = "warn"
# One clone at a time: govmomi v0.56.0's simulator races (Datastore.resolve
# against createVM) when clones run concurrently, which -race reports.
task_limit = 1

[[pools]]
name = "debian-12-x86_64"
alias = ["debian-12", "debian"]
template = "templates/debian-12-x86_64"
folder = "vmpooler/debian-12-x86_64"
size = 3

[[pools]]
name = "centos-9-x86_64"
alias = "centos-9"
template = "templates/centos-9-x86_64"
folder = "vmpooler/centos-9-x86_64"
size = 2

[providers.vsphere]
simulator = true
boot_delay = 0.1
datacenter = "DC0"
`)
	r := startPooler(t, cfgPath)
	waitReady(t, r.base, map[string]int{pools[0]: 3, pools[1]: 2})

	if err := chromedp.Do(b.tab, chromedp.Navigate(r.base+"/"),
		chromedp.WaitVisible(`#pools tbody tr[data-pool]`)); err != nil {
		t.Fatalf("load the dashboard: %v", err)
	}
	eval, until := b.eval, b.until
	type counts struct{ Ready, Pending, Running, Max int }
	pageCounts := func() map[string]counts {
		var out map[string]counts
		eval(`Object.fromEntries([...document.querySelectorAll('#pools tbody tr')].map(tr => [tr.dataset.pool,
			{Ready: +tr.querySelector('[data-k=ready]').textContent, Pending: +tr.querySelector('[data-k=pending]').textContent,
			 Running: +tr.querySelector('[data-k=running]').textContent, Max: +tr.querySelector('[data-k=size]').textContent}]))`, &out)
		return out
	}
	statusCounts := func() map[string]counts {
		var st struct{ Pools map[string]counts }
		getJSON(t, r.base+"/api/v1/status", &st)
		return st.Pools
	}
	until("the page's pool numbers match /status", func() (bool, any) {
		page, want := pageCounts(), statusCounts()
		return len(page) == 2 && reflect.DeepEqual(page, want), fmt.Sprintf("page %v, /status %v", page, want)
	})

	// A checkout, tagged, shows up without a reload.
	code, host := checkout(t, r.base, "debian")
	if code != 200 {
		t.Fatalf("checkout: %d", code)
	}
	req, _ := http.NewRequest("PUT", r.base+"/api/v1/vm/"+host, strings.NewReader(`{"tags":{"project":"dashboard"}}`))
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 200 {
		t.Fatalf("tag %s: %v %v", host, err, res)
	} else {
		res.Body.Close()
	}
	took := until("the checkout on the page", func() (bool, any) {
		var shown struct {
			Running int
			Host    bool
		}
		eval(`({Running: +document.querySelector('#pools tr[data-pool="debian-12-x86_64"] [data-k=running]').textContent,
			Host: !!document.querySelector('#running tr[data-host="`+host+`"]')})`, &shown)
		return shown.Running == 1 && shown.Host, shown
	})
	t.Logf("a checkout showed on the page %v after it returned (polling every 3 s)", took.Round(time.Millisecond))
	if took > 10*time.Second {
		t.Errorf("the checkout took %v to show; the page polls every 3 s", took)
	}

	// The 30-day chart draws one clone bar per seeded day, with its count.
	var chart struct {
		Days  string
		Bars  map[string]string
		Table int
	}
	until("the 30-day chart", func() (bool, any) {
		eval(`({Days: document.querySelector('#chart-counts').dataset.days || '',
			Bars: Object.fromEntries([...document.querySelectorAll('#chart-counts rect.s-clone')].map(r => [r.dataset.date, r.textContent])),
			Table: document.querySelectorAll('#hist-table tbody tr').length})`, &chart)
		return chart.Days == "30", chart
	})
	if chart.Table != 30 {
		t.Errorf("history table has %d rows, want 30", chart.Table)
	}
	for date, n := range seeded {
		if got, want := chart.Bars[date], fmt.Sprintf("%s: %d clones", date, n); got != want {
			t.Errorf("bar of %s = %q, want %q", date, got, want)
		}
	}
	if len(chart.Bars) < len(seeded) {
		t.Errorf("%d clone bars, want at least the %d seeded days", len(chart.Bars), len(seeded))
	}

	shot, err := chromedp.Run(b.tab, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}

	// The range buttons work from the keyboard; the pool selector narrows
	// the charts to one pool.
	if err := chromedp.Do(b.tab, chromedp.Focus(`#range button[data-days="7"]`), chromedp.KeyEvent("\r")); err != nil {
		t.Fatalf("press 7 days: %v", err)
	}
	until("the 7-day range", func() (bool, any) {
		var v struct{ Days, Pressed string }
		eval(`({Days: document.querySelector('#chart-counts').dataset.days,
			Pressed: document.querySelector('#range button[data-days="7"]').getAttribute('aria-pressed')})`, &v)
		return v.Days == "7" && v.Pressed == "true", v
	})
	var label string
	eval(`(() => { const s = document.querySelector('#hist-pool'); s.value = 'centos-9-x86_64';
		s.dispatchEvent(new Event('change')); return document.querySelector('#chart-counts svg title').textContent })()`, &label)
	if !strings.Contains(label, "centos-9-x86_64") {
		t.Errorf("chart label after choosing a pool: %q", label)
	}
	path := filepath.Join(t.TempDir(), "dashboard.png")
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(shot))
	if out := os.Getenv("VMPOOLER_DASHBOARD_SCREENSHOT"); out != "" {
		if err := os.WriteFile(out, shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	b.checkConsole()
}

// browser is a headless Chromium tab for one test, bounded to a minute,
// recording console errors and uncaught exceptions.
type browser struct {
	t    *testing.T
	ctx  context.Context // the test's minute
	tab  context.Context
	mu   sync.Mutex
	errs []string
}

// newBrowser starts Chromium (as root it needs --no-sandbox), or skips
// the test naming the package to install.
func newBrowser(t *testing.T) *browser {
	t.Helper()
	chromium := findChromium()
	if chromium == "" {
		t.Skip("no Chromium found: install Debian's package chromium (apt-get install chromium) to run the browser test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1200, 900))
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(acancel)
	tab, tcancel := chromedp.NewContext(actx)
	t.Cleanup(tcancel)
	b := &browser{t: t, ctx: ctx, tab: tab}
	console := chromedp.Console(tab)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errs = append(b.errs, m.String())
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// eval runs js in the page and decodes its value into v.
func (b *browser) eval(js string, v any) {
	b.t.Helper()
	raw, err := chromedp.Run(b.tab, chromedp.Evaluate[[]byte](js))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", js, err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		b.t.Fatalf("evaluate %s: %v (%s)", js, err, raw)
	}
}

// until waits (bounded by the test's minute) for cond, checking every
// 50 ms, and returns how long it took.
func (b *browser) until(what string, cond func() (bool, any)) time.Duration {
	b.t.Helper()
	start := time.Now()
	for {
		ok, seen := cond()
		if ok {
			return time.Since(start)
		}
		if b.ctx.Err() != nil {
			b.t.Fatalf("%s: gave up after %v; last saw %v", what, time.Since(start), seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkConsole fails the test if the page logged an error.
func (b *browser) checkConsole() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.errs) > 0 {
		b.t.Errorf("console errors:\n%s", strings.Join(b.errs, "\n"))
	}
}

// startWithAlice runs a pooler on the fake provider, pool a of one VM,
// with [auth] from an htpasswd file holding alice (password pw1) and
// settings added to [config]. It returns the pooler once a is ready, and a
// token of alice's.
func startWithAlice(t *testing.T, settings string) (*running, string) {
	t.Helper()
	text := fakeConfig("vmpooler.db", fakePool("a", 1)) + "\n[auth]\nprovider = \"htpasswd\"\nfile = \"htpasswd\"\n"
	dir, cfgPath := tempConfig(t, strings.Replace(text, "[config]\n", "[config]\n"+settings, 1))
	htpasswdFile(t, filepath.Join(dir, "htpasswd"), "alice", "pw1")
	r := startPooler(t, cfgPath)
	waitReady(t, r.base, map[string]int{"a": 1})
	_, tok := do(t, "POST", r.base+"/api/v1/token", "alice", "pw1", "")
	return r, fmt.Sprint(tok["token"])
}

// TestDashboardLoginInBrowser: with [auth] on, the running list hides who
// holds a VM until the visitor logs in with the page's form (a token kept
// in local storage), and hides it again after logging out.
func TestDashboardLoginInBrowser(t *testing.T) {
	testenv.SkipIfShort(t, "starts a browser")
	b := newBrowser(t)
	r, tok := startWithAlice(t, "")
	if code, body := doToken(t, "POST", r.base+"/api/v1/vm/a", tok); code != 200 {
		t.Fatalf("checkout with a token: %d %v", code, body)
	}
	if err := chromedp.Do(b.tab, chromedp.Navigate(r.base+"/dashboard")); err != nil {
		t.Fatal(err)
	}
	type view struct {
		User, Who, Note string
		Stored          bool
	}
	see := func() view {
		var v view
		b.eval(`({User: document.querySelector('#running tbody tr td:nth-child(3)')?.textContent || '',
			Who: document.querySelector('#who').textContent,
			Note: document.querySelector('#run-note').hidden ? '' : document.querySelector('#run-note').textContent,
			Stored: !!localStorage.getItem('vmpooler.token')})`, &v)
		return v
	}
	b.until("the user hidden before login", func() (bool, any) { v := see(); return v.User == "hidden" && v.Note != "", v })
	if err := chromedp.Do(b.tab, chromedp.Click(`#login-open`), chromedp.WaitVisible(`#login-user`),
		chromedp.SendKeys(`#login-user`, "alice"), chromedp.SendKeys(`#login-pass`, "pw1"),
		chromedp.Click(`#login-form button[type=submit]`)); err != nil {
		t.Fatalf("log in: %v", err)
	}
	b.until("the user shown after login", func() (bool, any) {
		v := see()
		return v.User == "alice" && v.Who == "Logged in as alice" && v.Stored && v.Note == "", v
	})
	if err := chromedp.Do(b.tab, chromedp.Click(`#logout`)); err != nil {
		t.Fatal(err)
	}
	b.until("the user hidden after logout", func() (bool, any) { v := see(); return v.User == "hidden" && !v.Stored, v })
	b.checkConsole()
}

// TestDashboardPrivateInBrowser: with [auth] and dashboard_public = false
// the running list needs a token (401 JSON without), and the page says so
// instead of asking for it, so it logs no 401; pool numbers stay public.
func TestDashboardPrivateInBrowser(t *testing.T) {
	testenv.SkipIfShort(t, "starts a browser")
	b := newBrowser(t)
	r, tok := startWithAlice(t, "dashboard_public = false\n")
	if code, body := do(t, "GET", r.base+"/api/v1/dashboard/running", "", "", ""); code != 401 || body["ok"] != false {
		t.Errorf("running list without a token: %d %v, want 401 JSON", code, body)
	}
	if code, body := doToken(t, "GET", r.base+"/api/v1/dashboard/running", tok); code != 200 {
		t.Errorf("running list with a token: %d %v", code, body)
	}
	if err := chromedp.Do(b.tab, chromedp.Navigate(r.base+"/dashboard"), chromedp.WaitVisible(`#pools tr[data-pool="a"]`)); err != nil {
		t.Fatal(err)
	}
	b.until("the note asking to log in", func() (bool, any) {
		var v struct {
			Note  string
			Login bool
			Rows  int
		}
		b.eval(`({Note: document.querySelector('#run-note').textContent, Login: !document.querySelector('#login-open').hidden,
			Rows: document.querySelectorAll('#running tbody tr').length})`, &v)
		return strings.HasPrefix(v.Note, "Log in to see the running VMs") && v.Login && v.Rows == 0, v
	})
	b.checkConsole()
}
