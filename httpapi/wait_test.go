package httpapi

import (
	"strings"
	"testing"
	"time"
)

// POST /vm/<pool>?wait=N waits for a VM: answered as an immediate checkout
// once one is ready, with upstream's 503 body at the deadline; /status
// shows the waiters; a bad wait is 400.
func TestCheckoutWait(t *testing.T) {
	m := NewMetrics()
	e := mustEnv(t, envOptions{metrics: m})
	for _, bad := range []string{"x", "-1", "1.5"} {
		if r := e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386?wait=" + bad}); r.status != 400 {
			t.Errorf("wait=%s: %d %s, want 400", bad, r.status, r.raw)
		}
	}
	start := time.Now()
	r := e.do(req{method: "POST", path: "/api/v1/vm/centos-7.2-x86_64?wait=1"})
	if r.status != 503 || r.body["ok"] != false || time.Since(start) < 900*time.Millisecond {
		t.Errorf("empty pool, wait=1: %d %s after %v, want 503 {ok:false} after 1 s", r.status, r.raw, time.Since(start))
	}

	done := make(chan resp, 1)
	go func() { done <- e.do(req{method: "POST", path: "/api/v2/vm/centos-7.2-x86_64?wait=30"}) }()
	deadline := time.Now().Add(10 * time.Second)
	for e.svc.Waiters()["centos-7.2-x86_64"].Count != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the checkout never waited")
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := e.do(req{method: "GET", path: "/api/v1/status"})
	wt, ok := st.body["pools"].(map[string]any)["centos-7.2-x86_64"].(map[string]any)["waiting"].(map[string]any)
	if !ok || wt["count"] != float64(1) {
		t.Errorf("/status waiting = %v", wt)
	}
	e.addReady("centos-7.2-x86_64", "waitedfor000001")
	e.svc.ServeWaiters() // what the manager does when it makes a VM ready
	select {
	case r := <-done:
		host, _ := r.body["centos-7.2-x86_64"].(map[string]any)["hostname"].(string)
		if r.status != 200 || !strings.HasPrefix(host, "waitedfor000001") {
			t.Errorf("waited checkout: %d %s", r.status, r.raw)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting checkout was not answered when its VM was ready")
	}
	text := e.scrape("/metrics")
	for _, line := range []string{"vmpooler_checkout_wait_timeouts_total 1", "vmpooler_checkout_wait_seconds_count 2"} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
