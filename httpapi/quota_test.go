package httpapi

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestQuotaCheckout: a checkout or ondemand request past
// max_running_per_user is 403 naming the limit and the count, and hands
// nothing out.
func TestQuotaCheckout(t *testing.T) {
	e := mustEnv(t, envOptions{auth: true})
	e.cfg.MaxRunningPerUser = 2
	e.addReady("debian-7-i386", "q1", "q2", "q3", "q4")
	e.addReady("debian-7-x86_64", "q5", "q6")
	tok := e.token("alice")
	if r := e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: tok}); r.status != 200 {
		t.Fatalf("first checkout: %d %s", r.status, r.raw)
	}
	r := e.do(req{method: "POST", path: "/api/v1/vm", body: `{"debian-7-i386":"1","debian-7-x86_64":"1"}`, token: tok})
	if r.status != 403 || r.body["ok"] != false || r.body["limit"] != 2.0 || r.body["running"] != 1.0 || r.body["requested"] != 2.0 {
		t.Fatalf("past the quota: %d %s", r.status, r.raw)
	}
	if msg, _ := r.body["error"].(string); !strings.Contains(msg, "max_running_per_user is 2") || !strings.Contains(msg, "holds 1") {
		t.Errorf("error %q", msg)
	}
	if c := e.st.Counts(); c["debian-7-i386"].Ready != 3 || c["debian-7-x86_64"].Ready != 2 {
		t.Errorf("a refused request moved VMs: %+v", c)
	}
	r = e.do(req{method: "POST", path: "/api/v1/ondemandvm", body: `{"debian-7-i386":"2"}`, token: tok})
	if r.status != 403 || r.body["limit"] != 2.0 {
		t.Errorf("ondemand past the quota: %d %s", r.status, r.raw)
	}
	// Bob has his own count; anonymous checkouts are not counted.
	if r := e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386+debian-7-i386", token: e.token("bob")}); r.status != 200 {
		t.Errorf("bob: %d %s", r.status, r.raw)
	}
	// Per pool.
	e.cfg.MaxRunningPerUser = 0
	e.cfg.Pools[1].MaxRunningPerUser = 1
	if r := e.do(req{method: "POST", path: "/api/v1/vm/debian-7-x86_64", token: tok}); r.status != 200 {
		t.Errorf("first of the pool: %d %s", r.status, r.raw)
	}
	r = e.do(req{method: "POST", path: "/api/v1/vm/debian-7-x86_64", token: tok})
	if r.status != 403 || r.body["pool"] != "debian-7-x86_64" || r.body["limit"] != 1.0 || r.body["running"] != 1.0 {
		t.Errorf("second of the pool: %d %s", r.status, r.raw)
	}
}

// Through the API too: 32 concurrent checkouts with one user's token
// against a quota of 5 hand out exactly 5.
func TestQuotaConcurrentAPI(t *testing.T) {
	e := mustEnv(t, envOptions{auth: true, realClock: true})
	e.cfg.MaxRunningPerUser = 5
	hosts := make([]string, 40)
	for i := range hosts {
		hosts[i] = "c" + strconv.Itoa(i)
	}
	e.addReady("debian-7-i386", hosts...)
	tok := e.token("alice")
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			switch r := e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: tok}); r.status {
			case 200:
				ok.Add(1)
			case 403:
				refused.Add(1)
			default:
				t.Errorf("%d %s", r.status, r.raw)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 || refused.Load() != 27 {
		t.Errorf("handed out %d, refused %d; want 5 and 27", ok.Load(), refused.Load())
	}
}
