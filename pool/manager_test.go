package pool

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/internal/logtest"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/store"
)

// mgrEnv is a manager on a real store and a FakeProvider.
type mgrEnv struct {
	m   *Manager
	fp  *FakeProvider
	st  *store.Store
	clk *clocktest.Clock
	log *logtest.Buffer
	ctx context.Context
}

// mgrTestPool returns a pool config in folder vmpooler/<name>.
func mgrTestPool(name string, size int) PoolConfig {
	return PoolConfig{Name: name, Template: "templates/" + name, Folder: "vmpooler/" + name, Size: size, Datacenter: "DC0"}
}

// mustManager builds a manager over pools (cfg tweaks applied first).
func mustManager(tb testing.TB, tweak func(*Config), pools ...PoolConfig) *mgrEnv {
	tb.Helper()
	clk := clocktest.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	st := storetest.MustOpen(tb, storetest.Now(clk.Now))
	return mustManagerOn(tb, st, clk, NewFakeProvider(), tweak, pools...)
}

// mustManagerOn builds a manager on a given store, clock and provider.
func mustManagerOn(tb testing.TB, st *store.Store, clk *clocktest.Clock, fp *FakeProvider, tweak func(*Config), pools ...PoolConfig) *mgrEnv {
	tb.Helper()
	cfg := &Config{Pools: pools}
	if tweak != nil {
		tweak(cfg)
	}
	cfg.Defaults()
	buf := &logtest.Buffer{}
	m := NewManager(cfg, st, fp, slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	m.Now = clk.Now
	tb.Cleanup(func() { m.Close() })
	return &mgrEnv{m: m, fp: fp, st: st, clk: clk, log: buf, ctx: context.Background()}
}

// restart starts another manager over pools with e's clock and provider,
// on st: e.st to restart the pooler, another store to give it a new
// database. It leaves e's manager as it is: close it first to restart.
func (e *mgrEnv) restart(tb testing.TB, st *store.Store, tweak func(*Config), pools ...PoolConfig) *mgrEnv {
	tb.Helper()
	return mustManagerOn(tb, st, e.clk, e.fp, tweak, pools...)
}

// pass runs one Reconcile and waits for the clones and jobs it started.
func (e *mgrEnv) pass(tb testing.TB) {
	tb.Helper()
	if err := e.m.Reconcile(e.ctx); err != nil {
		tb.Fatalf("Reconcile: %v", err)
	}
	e.m.Wait()
}

// states returns the pool's hostnames by state.
func (e *mgrEnv) states(tb testing.TB, pool string) map[store.State][]string {
	tb.Helper()
	vms, err := e.st.ListPool(pool)
	if err != nil {
		tb.Fatal(err)
	}
	out := make(map[store.State][]string)
	for _, vm := range vms {
		out[vm.State] = append(out[vm.State], vm.Hostname)
	}
	return out
}

func (e *mgrEnv) count(tb testing.TB, pool string, st store.State) int {
	tb.Helper()
	return len(e.states(tb, pool)[st])
}

func (e *mgrEnv) get(tb testing.TB, host string) store.VM {
	tb.Helper()
	vm, err := e.st.Get(host)
	if err != nil {
		tb.Fatal(err)
	}
	return vm
}

// fillReady brings the pool to its size of ready VMs (instant clones).
func (e *mgrEnv) fillReady(tb testing.TB, pool string, size int) []string {
	tb.Helper()
	e.pass(tb) // clone
	e.pass(tb) // ready check
	ready := e.states(tb, pool)[store.StateReady]
	if len(ready) != size {
		tb.Fatalf("ready = %d, want %d; states %v", len(ready), size, e.states(tb, pool))
	}
	return ready
}

func (e *mgrEnv) checkout(tb testing.TB, pool string) store.VM {
	tb.Helper()
	vms, err := e.st.Checkout(store.CheckoutRequest{Pools: []store.PoolCount{{Pool: pool, Count: 1}}})
	if err != nil {
		tb.Fatal(err)
	}
	return vms[0]
}

func TestManagerFill(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 3), mgrTestPool("p2", 2))
	e.pass(t)
	if got := e.count(t, "p1", store.StatePending); got != 3 {
		t.Fatalf("pending = %d, want 3", got)
	}
	for _, h := range e.states(t, "p1")[store.StatePending] {
		vm := e.get(t, h)
		if vm.Cloned.IsZero() || vm.Template != "templates/p1" || len(h) != 15 {
			t.Errorf("vm %+v: want cloned, template templates/p1, 15-char name", vm)
		}
	}
	e.pass(t)
	if got := e.count(t, "p1", store.StateReady); got != 3 {
		t.Fatalf("ready = %d, want 3", got)
	}
	if got := e.count(t, "p2", store.StateReady); got != 2 {
		t.Fatalf("p2 ready = %d, want 2", got)
	}
	vm := e.get(t, e.states(t, "p1")[store.StateReady][0])
	if vm.IP == "" {
		t.Errorf("ready vm has no IP: %+v", vm)
	}
	// Steady state: one List per pool per pass, no more clones.
	lists, clones := e.fp.Calls("List"), e.fp.Calls("Clone")
	e.pass(t)
	if got := e.fp.Calls("List") - lists; got != 2 {
		t.Errorf("List calls per pass = %d, want 2", got)
	}
	if got := e.fp.Calls("Clone") - clones; got != 0 {
		t.Errorf("clones in steady state = %d, want 0", got)
	}
	if !strings.Contains(e.log.String(), "vm ready") {
		t.Errorf("no state change logged:\n%s", e.log)
	}
}

func TestManagerPendingTimeout(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fp.SetInstantBoot(false)
	e.pass(t)
	host := e.states(t, "p1")[store.StatePending][0]
	e.clk.Advance(14 * time.Minute)
	e.pass(t)
	if got := e.get(t, host).State; got != store.StatePending {
		t.Fatalf("state at 14m = %s, want pending", got)
	}
	e.clk.Advance(2 * time.Minute)
	e.pass(t)
	vm := e.get(t, host)
	if vm.State != store.StateDestroyed || vm.Reason != "failed ready check: no guest IP after 15m" {
		t.Fatalf("vm = %s %q, want destroyed with the timeout reason", vm.State, vm.Reason)
	}
	if _, ok := e.fp.VM(host); ok {
		t.Error("timed-out vm still in vSphere")
	}
	// A pass whose new VM failed its ready check pauses the refill for
	// ReadyBackoffMin, then clones one probe.
	if got := e.count(t, "p1", store.StatePending); got != 0 {
		t.Errorf("refill right after a ready failure: pending = %d, want 0 (backing off)", got)
	}
	e.clk.Advance(time.Minute)
	e.pass(t)
	if got := e.count(t, "p1", store.StatePending); got != 1 {
		t.Errorf("refill after the pause: pending = %d, want 1", got)
	}
}

func TestManagerPendingBecomesReadyLater(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fp.SetInstantBoot(false)
	e.pass(t)
	host := e.states(t, "p1")[store.StatePending][0]
	e.pass(t)
	e.fp.Boot(host)
	e.clk.Advance(time.Minute)
	e.pass(t)
	if vm := e.get(t, host); vm.State != store.StateReady || vm.IP == "" {
		t.Fatalf("vm = %+v, want ready with IP", vm)
	}
}

// While a VM is pending the loop comes back after PendingCheck, not after
// the whole check_loop_delay, so a booted VM is handed out promptly.
func TestManagerNextPassShortWhilePending(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fp.SetInstantBoot(false)
	const delay = 5 * time.Second
	if got := e.m.nextPass(delay); got != delay {
		t.Errorf("empty store: next pass in %v, want %v", got, delay)
	}
	e.pass(t) // clones one VM: pending until it boots
	if got := e.m.nextPass(delay); got != e.m.PendingCheck {
		t.Errorf("pending vm: next pass in %v, want %v", got, e.m.PendingCheck)
	}
	e.fp.Boot(e.states(t, "p1")[store.StatePending][0])
	e.pass(t)
	if got := e.m.nextPass(delay); got != delay {
		t.Errorf("pool ready: next pass in %v, want %v", got, delay)
	}
}

func TestManagerReadyTTL(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	host := e.fillReady(t, "p1", 1)[0]
	e.clk.Advance(60 * time.Minute)
	e.pass(t)
	if got := e.get(t, host).State; got != store.StateReady {
		t.Fatalf("state at 60m = %s, want ready", got)
	}
	e.clk.Advance(time.Minute)
	e.pass(t)
	vm := e.get(t, host)
	if vm.State != store.StateDestroyed || vm.Reason != "ready_ttl of 60m expired" {
		t.Fatalf("vm = %s %q", vm.State, vm.Reason)
	}
	if d := e.fp.Destroyed(); len(d) != 1 || d[0] != host {
		t.Errorf("destroyed in vSphere = %v, want [%s]", d, host)
	}
}

func TestManagerReadyRecheck(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 2))
	ready := e.fillReady(t, "p1", 2)
	checks := e.fp.Calls("Ready")
	e.clk.Advance(30 * time.Second)
	e.pass(t)
	if got := e.fp.Calls("Ready") - checks; got != 0 {
		t.Fatalf("ready checks within vm_checktime = %d, want 0", got)
	}
	e.fp.SetReady(ready[0], false)
	e.clk.Advance(30 * time.Second)
	e.pass(t)
	if got := e.fp.Calls("Ready") - checks; got != 2 {
		t.Errorf("ready checks after vm_checktime = %d, want 2", got)
	}
	vm := e.get(t, ready[0])
	if vm.State != store.StateDestroyed || vm.Reason != "failed ready check: ready check failed" {
		t.Fatalf("vm = %s %q", vm.State, vm.Reason)
	}
	if got := e.get(t, ready[1]).State; got != store.StateReady {
		t.Errorf("healthy vm = %s, want ready", got)
	}
}

// A ready VM whose guest reports another hostname is failed at its next
// check; a guest's FQDN is fine; the check can be turned off per pool.
func TestManagerHostnameMismatch(t *testing.T) {
	off := false
	quiet := mgrTestPool("p2", 1)
	quiet.CheckHostnameMismatch = &off
	e := mustManager(t, nil, mgrTestPool("p1", 3), quiet)
	e.pass(t)
	e.pass(t)
	ready := e.states(t, "p1")[store.StateReady]
	other := e.states(t, "p2")[store.StateReady]
	if len(ready) != 3 || len(other) != 1 {
		t.Fatalf("ready = %v %v", ready, other)
	}
	e.fp.SetGuestHostname(ready[0], "template-build-host")
	e.fp.SetGuestHostname(ready[1], ready[1]+".example.com")
	e.fp.SetGuestHostname(other[0], "template-build-host")

	e.clk.Advance(90 * time.Second) // past vm_checktime: the next pass rechecks
	e.pass(t)
	if vm := e.get(t, ready[0]); vm.State != store.StateDestroyed || vm.Reason != `hostname mismatch: the guest reports "template-build-host"` {
		t.Errorf("mismatched vm = %s %q", vm.State, vm.Reason)
	}
	for _, h := range []string{ready[1], ready[2], other[0]} {
		if got := e.get(t, h).State; got != store.StateReady {
			t.Errorf("%s = %s, want ready", h, got)
		}
	}
}

func TestManagerLifetime(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 2))
	e.fillReady(t, "p1", 2)
	def := e.checkout(t, "p1")
	short := e.checkout(t, "p1")
	if _, err := e.st.Modify(short.Hostname, 2, nil); err != nil {
		t.Fatal(err)
	}
	e.pass(t) // refills the pool, annotates the running VMs
	if vm, _ := e.fp.VM(def.Hostname); vm.Notes["vmpooler_pool"] != "p1" {
		t.Errorf("running vm not annotated: %v", vm.Notes)
	}
	e.clk.Advance(2*time.Hour - time.Second)
	e.pass(t)
	if got := e.get(t, short.Hostname).State; got != store.StateRunning {
		t.Fatalf("1h59m59s into a 2h lifetime: %s, want running (whole hours)", got)
	}
	e.clk.Advance(time.Second)
	e.pass(t)
	if vm := e.get(t, short.Hostname); vm.State != store.StateDestroyed || vm.Reason != "lifetime of 2h expired" {
		t.Fatalf("short = %s %q", vm.State, vm.Reason)
	}
	e.clk.Advance(22 * time.Hour)
	e.pass(t)
	if vm := e.get(t, def.Hostname); vm.State != store.StateDestroyed || vm.Reason != "lifetime of 24h expired" {
		t.Fatalf("default = %s %q", vm.State, vm.Reason)
	}
}

func TestManagerReturnDestroys(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 2))
	e.fillReady(t, "p1", 2)
	a, b := e.checkout(t, "p1"), e.checkout(t, "p1")
	for _, h := range []string{a.Hostname, b.Hostname} {
		if err := e.st.Return(h, "returned by user", store.Anyone); err != nil {
			t.Fatal(err)
		}
	}
	e.fp.Vanish(b.Hostname) // gone already: counts as destroyed
	e.pass(t)
	for _, h := range []string{a.Hostname, b.Hostname} {
		if vm := e.get(t, h); vm.State != store.StateDestroyed || vm.Reason != "returned by user" {
			t.Errorf("%s = %s %q, want destroyed, reason kept", h, vm.State, vm.Reason)
		}
	}
	if _, ok := e.fp.VM(a.Hostname); ok {
		t.Error("returned vm still in vSphere")
	}
	if got := e.count(t, "p1", store.StatePending); got != 2 {
		t.Errorf("refill: pending = %d, want 2", got)
	}
}

func TestManagerOrphansAndVanished(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 2))
	ready := e.fillReady(t, "p1", 2)
	mine := Owner{Instance: e.st.Instance(), Pool: "p1"}
	e.fp.Add("DC0", "vmpooler/p1", VMInfo{Name: "stray", PoweredOn: true, Owner: mine})
	e.fp.Add("DC0", "vmpooler/p1", VMInfo{Name: "p1"}) // the template's name, unmarked: foreign
	e.fp.Add("DC0", "elsewhere", VMInfo{Name: "other", Owner: mine})
	e.fp.Vanish(ready[0])
	e.pass(t)
	if _, ok := e.fp.VM("stray"); ok {
		t.Error("orphan not destroyed")
	}
	for _, name := range []string{"p1", "other"} {
		if _, ok := e.fp.VM(name); !ok {
			t.Errorf("%s destroyed, want kept", name)
		}
	}
	if vm := e.get(t, ready[0]); vm.State != store.StateDestroyed || vm.Reason != "vanished from vSphere" {
		t.Errorf("vanished vm = %s %q", vm.State, vm.Reason)
	}
	if got := e.count(t, "p1", store.StatePending); got != 1 {
		t.Errorf("refill: pending = %d, want 1", got)
	}
}

func TestManagerMissingFolder(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fp.SetListHook(func(folder string) error { return fmt.Errorf("folder %s: %w", folder, ErrNotFound) })
	e.pass(t) // no records: an empty folder, so clone (which may create it)
	if got := e.count(t, "p1", store.StatePending); got != 1 {
		t.Fatalf("pending = %d, want 1", got)
	}
	e.clk.Advance(time.Minute)
	e.pass(t) // live records: a fault, not "every VM vanished"
	if got := e.count(t, "p1", store.StatePending); got != 1 {
		t.Fatalf("pending = %d after a missing folder with records, want 1 kept", got)
	}
	e.fp.SetListHook(nil)
	e.clk.Advance(time.Minute)
	e.pass(t)
	if got := e.count(t, "p1", store.StateReady); got != 1 {
		t.Fatalf("ready = %d, want 1", got)
	}
}

func TestManagerSharedFolder(t *testing.T) {
	a, b := mgrTestPool("a", 1), mgrTestPool("b", 1)
	b.Folder = a.Folder
	e := mustManager(t, nil, a, b)
	e.fillReady(t, "a", 1)
	e.pass(t)
	if got, want := len(e.fp.Destroyed()), 0; got != want {
		t.Fatalf("destroyed %v in a shared folder, want none", e.fp.Destroyed())
	}
}

func TestManagerCloneFailure(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fp.SetCloneError(func(CloneSpec) error { return fmt.Errorf("template missing: %w", ErrNotFound) })
	e.pass(t)
	vms, err := e.st.List("p1", store.StateDestroyed)
	if err != nil || len(vms) != 1 {
		t.Fatalf("destroyed = %v, %v; want one", vms, err)
	}
	if want := "clone failed: template missing: not found"; vms[0].Reason != want {
		t.Errorf("reason = %q, want %q", vms[0].Reason, want)
	}
	if got := e.fp.Calls("Destroy"); got != 1 {
		t.Errorf("destroy attempts = %d, want 1", got)
	}
	e.pass(t) // refills wait 1s after a failed clone
	if got := e.fp.Calls("Clone"); got != 1 {
		t.Errorf("clones during backoff = %d, want 1", got)
	}
	e.fp.SetCloneError(nil)
	e.clk.Advance(time.Second)
	e.fillReady(t, "p1", 1) // recovered
}

func TestManagerHostnameConflict(t *testing.T) {
	e := mustManager(t, func(c *Config) { c.Prefix = "t-" }, mgrTestPool("p1", 2))
	names := []string{"t-aaa", "t-aaa", "t-bbb"}
	var mu sync.Mutex
	e.m.NewName = func(prefix string) string {
		mu.Lock()
		defer mu.Unlock()
		n := names[0]
		names = names[1:]
		return n
	}
	e.pass(t)
	got := e.states(t, "p1")[store.StatePending]
	if strings.Join(got, ",") != "t-aaa,t-bbb" && strings.Join(got, ",") != "t-bbb,t-aaa" {
		t.Errorf("pending = %v, want t-aaa and t-bbb", got)
	}
}

func TestManagerTaskLimit(t *testing.T) {
	e := mustManager(t, func(c *Config) { c.TaskLimit = 2 }, mgrTestPool("a", 3), mgrTestPool("b", 3))
	e.fp.HoldClones()
	if err := e.m.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if a, b := e.count(t, "a", store.StatePending), e.count(t, "b", store.StatePending); a != 1 || b != 1 {
		t.Fatalf("pending a=%d b=%d, want 1 each (round robin under task_limit 2)", a, b)
	}
	if err := e.m.Reconcile(e.ctx); err != nil { // slots still taken
		t.Fatal(err)
	}
	if a, b := e.count(t, "a", store.StatePending), e.count(t, "b", store.StatePending); a+b != 2 {
		t.Fatalf("pending = %d, want 2 while clones are in flight", a+b)
	}
	e.fp.ReleaseClones()
	e.m.Wait()
	e.pass(t)
	e.pass(t)
	e.pass(t)
	if a, b := e.count(t, "a", store.StateReady), e.count(t, "b", store.StateReady); a != 3 || b != 3 {
		t.Fatalf("ready a=%d b=%d, want 3 each", a, b)
	}
}

func TestManagerSizeOverride(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 3))
	e.fillReady(t, "p1", 3)
	one := 1
	if err := e.st.PutOverride("p1", store.Override{Size: &one}); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	s := e.states(t, "p1")
	if len(s[store.StateReady]) != 1 || len(s[store.StatePending]) != 0 {
		t.Fatalf("states = %v, want 1 ready", s)
	}
	if got := len(e.fp.Names("vmpooler/p1")); got != 1 {
		t.Errorf("vms in vSphere = %d, want 1", got)
	}
	zero := 0
	if err := e.st.PutOverride("p1", store.Override{Size: &zero}); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	if s := e.states(t, "p1"); len(s) != 0 {
		t.Fatalf("size 0: states = %v, want none", s)
	}
}

// A template or clone_target override drains the VMs built the old way,
// and removing it drains those built the new way, as upstream does.
func TestManagerBuildOverride(t *testing.T) {
	for _, tc := range []struct {
		name     string
		override store.Override
		reason   string // of the drained VMs
		want     string // what the new VMs are built from
		builtBy  func(t *testing.T, e *mgrEnv, host string) string
	}{
		{"template", store.Override{Template: "templates/new"}, "template changed to templates/new", "templates/new",
			func(t *testing.T, e *mgrEnv, h string) string { vm, _ := e.fp.VM(h); return vm.Template }},
		{"clone_target", store.Override{CloneTarget: "cluster2"}, `clone_target changed to "cluster2"`, "cluster2",
			func(t *testing.T, e *mgrEnv, h string) string { return e.get(t, h).CloneTarget }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := mustManager(t, nil, mgrTestPool("p1", 2))
			old := e.fillReady(t, "p1", 2)
			if err := e.st.PutOverride("p1", tc.override); err != nil {
				t.Fatal(err)
			}
			e.pass(t)
			for _, h := range old {
				if vm := e.get(t, h); vm.State != store.StateDestroyed || vm.Reason != tc.reason {
					t.Errorf("%s = %s %q", h, vm.State, vm.Reason)
				}
			}
			e.pass(t)
			moved := e.states(t, "p1")[store.StateReady]
			if len(moved) != 2 {
				t.Fatalf("ready = %v, want 2", moved)
			}
			for _, h := range moved {
				if got := tc.builtBy(t, e, h); got != tc.want {
					t.Errorf("%s built from %q, want %s", h, got, tc.want)
				}
			}
			e.pass(t)
			if got := e.states(t, "p1")[store.StateReady]; len(got) != 2 || got[0] != moved[0] || got[1] != moved[1] {
				t.Errorf("steady pass changed the pool: %v, want %v", got, moved)
			}
			if err := e.st.PutOverride("p1", store.Override{}); err != nil { // DELETE /config/pooltemplate or /config/clonetarget
				t.Fatal(err)
			}
			e.pass(t)
			for _, h := range moved {
				if vm := e.get(t, h); vm.State != store.StateDestroyed {
					t.Errorf("%s = %s after the override was removed, want destroyed", h, vm.State)
				}
			}
		})
	}
}

func TestManagerRestart(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 2))
	e.fillReady(t, "p1", 2)
	running := e.checkout(t, "p1")
	e.fp.HoldClones()
	if err := e.m.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	inflight := e.states(t, "p1")[store.StatePending]
	if len(inflight) != 1 {
		t.Fatalf("after Close: pending = %v, want the interrupted clone", inflight)
	}
	e.fp.ReleaseClones()
	// The process died; a half-finished clone of another pending VM exists.
	survivor := "survivor123456x"
	if err := e.st.AddPending(store.VM{Hostname: survivor, Pool: "p1", Template: "templates/p1"}); err != nil {
		t.Fatal(err)
	}
	e.fp.Add("DC0", "vmpooler/p1", VMInfo{Name: survivor, PoweredOn: true, ToolsRunning: true, IP: "10.9.9.9"})

	e2 := e.restart(t, e.st, nil, mgrTestPool("p1", 2))
	e2.pass(t)
	if vm := e2.get(t, inflight[0]); vm.State != store.StateDestroyed || !strings.Contains(vm.Reason, "clone interrupted") {
		t.Errorf("interrupted clone = %s %q, want destroyed", vm.State, vm.Reason)
	}
	if vm := e2.get(t, survivor); vm.State != store.StateReady || vm.IP != "10.9.9.9" {
		t.Errorf("survivor = %s %q, want ready", vm.State, vm.IP)
	}
	if vm := e2.get(t, running.Hostname); vm.State != store.StateRunning {
		t.Errorf("running vm = %s, want still running", vm.State)
	}
	e2.pass(t)
	s := e2.states(t, "p1")
	if len(s[store.StateReady]) != 2 || len(s[store.StateRunning]) != 1 {
		t.Errorf("states = %v, want 2 ready, 1 running", s)
	}
	// Nothing leaked: every VM in the folder has a live record.
	for _, name := range e.fp.Names("vmpooler/p1") {
		if vm := e2.get(t, name); vm.State == store.StateDestroyed {
			t.Errorf("%s leaked in vSphere", name)
		}
	}
}

func TestManagerVCenterDown(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 2))
	e.fp.SetDown(fmt.Errorf("dial tcp: connection refused: %w", ErrTransient))
	lists := func() int { return e.fp.Calls("List") }
	e.pass(t)
	if lists() != 1 {
		t.Fatalf("List calls = %d, want 1", lists())
	}
	e.pass(t) // within the 1s backoff: no call
	e.clk.Advance(time.Second)
	e.pass(t) // retry, now 2s backoff
	e.clk.Advance(time.Second)
	e.pass(t)
	if lists() != 2 {
		t.Fatalf("List calls = %d, want 2 (1s then 2s backoff)", lists())
	}
	for range 10 {
		e.clk.Advance(time.Minute)
		e.pass(t)
	}
	if got := strings.Count(e.log.String(), "backing off"); got != 1 {
		t.Errorf("backoff logged %d times, want once per change", got)
	}
	if got := e.fp.Calls("Clone"); got != 0 {
		t.Errorf("clones while down = %d, want 0", got)
	}
	// The store keeps working meanwhile.
	if _, err := e.st.ListPool("p1"); err != nil {
		t.Fatal(err)
	}
	e.fp.SetDown(nil)
	e.clk.Advance(time.Minute)
	e.fillReady(t, "p1", 2) // vCenter is back
	if !strings.Contains(e.log.String(), "reachable again") {
		t.Error("recovery not logged")
	}
}

func TestManagerOpenClose(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	if err := e.m.Open(); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Open(); err == nil {
		t.Error("second Open succeeded")
	}
	e.m.Kick()
	e.m.Kick() // never blocks
	if err := e.m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Open(); err == nil {
		t.Error("Open after Close succeeded")
	}
}

func TestNewHostname(t *testing.T) {
	seen := make(map[string]bool)
	for range 1000 {
		h := NewHostname("pre-")
		if len(h) != 19 || !strings.HasPrefix(h, "pre-") {
			t.Fatalf("hostname %q: want pre- and 15 characters", h)
		}
		for _, c := range h[4:] {
			if !strings.ContainsRune(hostnameAlphabet, c) {
				t.Fatalf("hostname %q has %q", h, c)
			}
		}
		if seen[h] {
			t.Fatalf("hostname %q drawn twice", h)
		}
		seen[h] = true
	}
}

func TestManagerSlowCloneTimesOut(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 1))
	e.fp.HoldClones()
	if err := e.m.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	host := e.states(t, "p1")[store.StatePending][0]
	e.clk.Advance(16 * time.Minute)
	if err := e.m.Reconcile(e.ctx); err != nil {
		t.Fatal(err)
	}
	// The pass failed it; the cancelled clone's goroutine may already have
	// destroyed it too.
	if vm := e.get(t, host); vm.State != store.StateCompleted && vm.State != store.StateDestroyed {
		t.Fatalf("timed-out clone = %s, want completed or destroyed", vm.State)
	}
	e.fp.ReleaseClones() // the refill's clone; the old one was cancelled
	e.m.Wait()
	e.pass(t)
	e.pass(t)
	if vm := e.get(t, host); vm.State != store.StateDestroyed || vm.Reason != "clone not finished after 15m" {
		t.Fatalf("vm = %s %q", vm.State, vm.Reason)
	}
	if got := e.count(t, "p1", store.StateReady); got != 1 {
		t.Errorf("ready = %d, want 1", got)
	}
	for _, name := range e.fp.Names("") {
		if vm := e.get(t, name); vm.State != store.StateReady {
			t.Errorf("%s left in vSphere as %s", name, vm.State)
		}
	}
}

func TestManagerExcessPendingFirst(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("p1", 3))
	e.fp.SetInstantBoot(false)
	e.pass(t)
	pending := e.states(t, "p1")[store.StatePending]
	e.fp.Boot(pending[0])
	one := 1
	if err := e.st.PutOverride("p1", store.Override{Size: &one}); err != nil {
		t.Fatal(err)
	}
	e.pass(t)
	s := e.states(t, "p1")
	if len(s[store.StateReady]) != 1 || len(s[store.StatePending]) != 0 || s[store.StateReady][0] != pending[0] {
		t.Fatalf("states = %v, want only %s ready", s, pending[0])
	}
	if vm := e.get(t, pending[1]); vm.Reason != "pool size is 1" {
		t.Errorf("reason = %q", vm.Reason)
	}
}

// With dns_check, a new VM is ready only once its name in the pool's
// domain resolves to its IP; until then it stays pending, saying why.
func TestManagerDNSCheck(t *testing.T) {
	pc := mgrTestPool("p1", 1)
	pc.Domain = "lab.example"
	e := mustManager(t, func(c *Config) { c.DNSCheck = true }, pc)
	var mu sync.Mutex
	names := map[string][]string{}
	e.m.LookupHost = func(_ context.Context, host string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		if a, ok := names[host]; ok {
			return a, nil
		}
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	e.pass(t) // clone
	e.pass(t) // ready check: the name does not resolve
	pending := e.states(t, "p1")[store.StatePending]
	if len(pending) != 1 {
		t.Fatalf("states %v, want one pending", e.states(t, "p1"))
	}
	vm, err := e.st.Get(pending[0])
	if err != nil {
		t.Fatal(err)
	}
	fvm, _ := e.fp.VM(vm.Hostname)
	ip := fvm.Info.IP
	mu.Lock()
	names[vm.Hostname+".lab.example"] = []string{"192.0.2.1"} // wrong address
	mu.Unlock()
	e.pass(t)
	if got := e.states(t, "p1")[store.StateReady]; len(got) != 0 {
		t.Fatalf("ready with a name that resolves elsewhere: %v", got)
	}
	mu.Lock()
	names[vm.Hostname+".lab.example"] = []string{"192.0.2.1", ip}
	mu.Unlock()
	e.pass(t)
	if got := e.states(t, "p1")[store.StateReady]; len(got) != 1 {
		t.Errorf("states %v once the name resolves, want it ready", e.states(t, "p1"))
	}
}
