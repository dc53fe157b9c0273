package pool

import (
	"context"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/store"
)

// svcEnv is a Service on a real store with a fixed clock.
type svcEnv struct {
	t     *testing.T
	svc   *Service
	st    *store.Store
	clk   *clocktest.Clock
	kicks int
}

func mustServiceEnv(t *testing.T) *svcEnv {
	t.Helper()
	e := &svcEnv{t: t, clk: clocktest.New(time.Date(2015, 3, 11, 10, 0, 0, 0, time.UTC))}
	clock := e.clk.Now
	e.st = storetest.MustOpen(t, storetest.Now(clock))
	cfg := &Config{Domain: "example.com", VMLifetime: 12, VMLifetimeAuth: 48, MaxLifetimeUpperLimit: 100,
		AllowedTags: []string{"url", "project"},
		Pools: []PoolConfig{
			{Name: "a", Alias: Aliases{"both"}, Size: 2},
			{Name: "b", Alias: Aliases{"both"}, Size: 2, Domain: "b.example.com"},
		}}
	cfg.Defaults()
	e.svc = NewService(cfg, e.st, nil)
	e.svc.Now = clock
	e.svc.SetConfig(cfg, map[string]string{"url": `^(.*)/`})
	e.svc.Kick = func() { e.kicks++ }
	return e
}

func (e *svcEnv) ready(pool string, hosts ...string) {
	e.t.Helper()
	for _, h := range hosts {
		if err := e.st.AddPending(store.VM{Hostname: h, Pool: pool}); err != nil {
			e.t.Fatal(err)
		}
		if err := e.st.MarkReady(h, ""); err != nil {
			e.t.Fatal(err)
		}
		e.clk.Advance(time.Second)
	}
}

func TestServiceCheckout(t *testing.T) {
	e := mustServiceEnv(t)
	e.ready("a", "a1", "a2")
	e.ready("b", "b1")

	t.Run("alias uses every candidate", func(t *testing.T) {
		got, err := e.svc.Checkout([]Want{{"both", 3}}, Caller{})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(got["both"]); n != 3 {
			t.Fatalf("got %d VMs, want 3", n)
		}
		if e.kicks == 0 {
			t.Error("checkout did not kick the manager")
		}
	})
	t.Run("empty is all or nothing", func(t *testing.T) {
		e.ready("a", "a3")
		_, err := e.svc.Checkout([]Want{{"a", 1}, {"b", 1}}, Caller{})
		if errs.ErrorCode(err) != errs.EEMPTY {
			t.Fatalf("err = %v, want EEMPTY", err)
		}
		if r := e.st.Counts()["a"].Ready; r != 1 {
			t.Errorf("a ready = %d, want 1 (nothing handed out)", r)
		}
	})
	t.Run("unknown name", func(t *testing.T) {
		if _, err := e.svc.Checkout([]Want{{"zzz", 1}}, Caller{}); errs.ErrorCode(err) != errs.ENOTFOUND {
			t.Errorf("err = %v, want ENOTFOUND", err)
		}
	})
	t.Run("token gets vm_lifetime_auth and user", func(t *testing.T) {
		got, err := e.svc.Checkout([]Want{{"a", 1}}, Caller{User: "jdoe", Auth: true})
		if err != nil {
			t.Fatal(err)
		}
		vm := got["a"][0]
		if vm.User != "jdoe" || vm.Lifetime != 48 {
			t.Errorf("user %q lifetime %d, want jdoe 48", vm.User, vm.Lifetime)
		}
	})
}

func TestServiceModifyAndOwnership(t *testing.T) {
	e := mustServiceEnv(t)
	e.ready("a", "a1", "a2")
	got, err := e.svc.Checkout([]Want{{"a", 1}}, Caller{User: "jdoe", Auth: true})
	if err != nil {
		t.Fatal(err)
	}
	host := got["a"][0].Hostname
	two, zero, hundred := 2, 0, 100
	for _, c := range []struct {
		name string
		m    Modification
		c    Caller
		code string
	}{
		{"no token", Modification{Lifetime: &two}, Caller{Auth: true}, errs.EUNAUTHORIZED},
		{"other user", Modification{Lifetime: &two}, Caller{User: "alice", Auth: true}, errs.EFORBIDDEN},
		{"zero", Modification{Lifetime: &zero, LifetimeArg: "0"}, Caller{User: "jdoe", Auth: true}, errs.EINVALID},
		{"at limit", Modification{Lifetime: &hundred, LifetimeArg: "100"}, Caller{User: "jdoe", Auth: true}, errs.EINVALID},
		{"tag not allowed", Modification{Tags: map[string]string{"x": "1"}}, Caller{}, errs.EINVALID},
		{"owner", Modification{Lifetime: &two, Tags: map[string]string{"url": "ci.example.com/job/1", "project": ""}}, Caller{User: "jdoe", Auth: true}, ""},
	} {
		if err := e.svc.Modify(host, c.m, c.c); errs.ErrorCode(err) != c.code {
			t.Errorf("%s: err = %v, want code %q", c.name, err, c.code)
		}
	}
	vm, err := e.st.Get(host)
	if err != nil {
		t.Fatal(err)
	}
	if vm.Lifetime != 2 || vm.Tags["url"] != "ci.example.com/job" || len(vm.Tags) != 1 {
		t.Errorf("lifetime %d tags %v, want 2 and the filtered url only", vm.Lifetime, vm.Tags)
	}
	if err := e.svc.Return(host, Caller{User: "alice", Auth: true}); errs.ErrorCode(err) != errs.EFORBIDDEN {
		t.Errorf("return by alice: %v, want EFORBIDDEN", err)
	}
	if err := e.svc.Return("a2", Caller{}); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("return of a ready VM: %v, want ENOTFOUND", err)
	}
	if err := e.svc.Return(host, Caller{User: "jdoe", Auth: true}); err != nil {
		t.Errorf("return by owner: %v", err)
	}
}

func TestServiceGetEffectiveLifetime(t *testing.T) {
	e := mustServiceEnv(t)
	e.ready("b", "b1")
	if _, err := e.svc.Checkout([]Want{{"b", 1}}, Caller{}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(90 * time.Minute)
	v, err := e.svc.Get("b1")
	if err != nil {
		t.Fatal(err)
	}
	// Anonymous checkout: stored lifetime 0, effective 12 (upstream showed remaining 0).
	if v.Lifetime != 12 || v.Running != 1.5 || v.Remaining != 10.5 || v.Domain != "b.example.com" {
		t.Errorf("got lifetime %d running %v remaining %v domain %q; want 12 1.5 10.5 b.example.com",
			v.Lifetime, v.Running, v.Remaining, v.Domain)
	}
	if !v.End.Equal(v.CheckedOut.Add(12 * time.Hour)) {
		t.Errorf("end %v, want checkout + 12h", v.End)
	}
}

func TestServiceStatus(t *testing.T) {
	e := mustServiceEnv(t)
	e.ready("a", "a1")
	e.svc.Cloning = func() int { return 0 }
	st, err := e.svc.Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Current != 1 || st.Total != 4 || st.Percent != 25 || len(st.Empty) != 1 || st.Empty[0] != "b" {
		t.Errorf("status = %+v", st)
	}
	if st.Boot.Count != 1 {
		t.Errorf("boot count %d, want 1", st.Boot.Count)
	}
}

func TestServiceSummaryDates(t *testing.T) {
	e := mustServiceEnv(t)
	for _, c := range []struct{ from, to, code string }{
		{"", "", ""}, {"2015-03-01", "", ""}, {"2015-3-1", "", errs.EINVALID}, {"2015-03-12", "", errs.EINVALID},
		{"2015-03-10", "2015-03-09", errs.EINVALID}, {"2000-01-01", "2015-03-11", errs.EINVALID},
	} {
		if _, err := e.svc.Summary(c.from, c.to); errs.ErrorCode(err) != c.code {
			t.Errorf("Summary(%q, %q): %v, want code %q", c.from, c.to, err, c.code)
		}
	}
}

// TestServiceOndemandLimitCountsAliases is the regression test of the
// ondemand limit bypass: a pool and its alias each asking for the limit
// must not get twice the limit of one pool.
func TestServiceOndemandLimitCountsAliases(t *testing.T) {
	e := mustServiceEnv(t)
	cfg := *e.svc.Current()
	cfg.Pools = append(cfg.Pools[:len(cfg.Pools):len(cfg.Pools)], PoolConfig{Name: "c", Alias: Aliases{"c-alias", "c-other"}})
	e.svc.SetConfig(&cfg, nil)
	user := Caller{User: "jdoe", Auth: true}
	for _, c := range []struct {
		name  string
		wants []Want
		code  string
	}{
		{"pool and two aliases", []Want{{"c", 10}, {"c-alias", 10}, {"c-other", 10}}, errs.EFORBIDDEN},
		{"pool and alias over", []Want{{"c", 6}, {"c-alias", 5}}, errs.EFORBIDDEN},
		{"one name over", []Want{{"c", 11}}, errs.EFORBIDDEN},
		{"pool and alias at the limit", []Want{{"c", 6}, {"c-alias", 4}}, ""},
		{"alias spread over two pools", []Want{{"both", 10}}, ""},
	} {
		if _, err := e.svc.RequestOndemand(c.wants, "", user); errs.ErrorCode(err) != c.code {
			t.Errorf("%s: err = %v, want code %q", c.name, err, c.code)
		}
	}
}

// TestServiceTemplateReady: template_ready is true only for a template the
// provider finds; a provider that cannot tell gives false and is not asked
// again within the cache TTL, while an override always asks afresh.
func TestServiceTemplateReady(t *testing.T) {
	e := mustServiceEnv(t)
	prov := NewFakeProvider()
	e.svc.Templates = prov
	e.svc.Current().Pools[0].Template = "t/a"
	e.svc.Current().Pools[1].Template = "t/missing"
	prov.SetCloneError(func(spec CloneSpec) error {
		if spec.Template == "t/missing" {
			return ErrNotFound
		}
		return nil
	})
	if !e.svc.TemplateReady(e.svc.Current().Pools[0]) || e.svc.TemplateReady(e.svc.Current().Pools[1]) {
		t.Error("want a ready, b (missing template) not")
	}
	prov.SetDown(ErrTransient)
	p := PoolConfig{Name: "a", Template: "t/other"}
	if e.svc.TemplateReady(p) {
		t.Error("provider down: want not ready")
	}
	prov.SetDown(nil)
	if e.svc.TemplateReady(p) {
		t.Error("cached failure: want not ready until the TTL passes")
	}
	e.svc.Current().ExperimentalFeatures = true
	if _, err := e.svc.SetPoolTemplates(map[string]string{"a": "t/other"}, Caller{}); err != nil {
		t.Errorf("override with an existing template: %v", err)
	}
	if _, err := e.svc.SetPoolTemplates(map[string]string{"a": "t/missing"}, Caller{}); errs.ErrorCode(err) != errs.EINVALID {
		t.Errorf("override with a missing template: %v, want EINVALID", err)
	}
}

// checkout_requires_token: with auth on, a checkout without a token is
// 401 (waiting or not), so none escapes the quotas; with a token, or with
// auth off, it goes ahead.
func TestCheckoutRequiresToken(t *testing.T) {
	e := mustServiceEnv(t)
	cfg := *e.svc.Current()
	cfg.CheckoutRequiresToken = true
	e.svc.SetConfig(&cfg, nil)
	e.ready("a", "a1", "a2")
	anon := Caller{Auth: true}
	if _, err := e.svc.Checkout([]Want{{"a", 1}}, anon); errs.ErrorCode(err) != errs.EUNAUTHORIZED {
		t.Errorf("anonymous checkout: %v, want EUNAUTHORIZED", err)
	}
	if _, err := e.svc.CheckoutWait(context.Background(), []Want{{"a", 1}}, anon, time.Second); errs.ErrorCode(err) != errs.EUNAUTHORIZED {
		t.Errorf("anonymous waiting checkout: %v, want EUNAUTHORIZED", err)
	}
	if _, err := e.svc.Checkout([]Want{{"a", 1}}, Caller{Auth: true, User: "bob"}); err != nil {
		t.Errorf("bob's checkout: %v", err)
	}
	if _, err := e.svc.Checkout([]Want{{"a", 1}}, Caller{}); err != nil {
		t.Errorf("checkout with auth off: %v", err)
	}
}
