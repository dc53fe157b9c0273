package httpapi

import (
	"testing"

	"github.com/vmpooler/vmpooler/store"
)

// GET /vm/<host>/snapshot[/<name>] follows an asynchronous snapshot and
// never reverts: the API document's revert example sends a GET by mistake.
func TestSnapshotGet(t *testing.T) {
	e := mustEnv(t, envOptions{})
	e.addReady("debian-7-i386", "snap1")
	if _, err := e.st.Checkout(store.CheckoutRequest{Pools: []store.PoolCount{{Pool: "debian-7-i386", Count: 1}}}); err != nil {
		t.Fatal(err)
	}
	res := e.do(req{method: "POST", path: "/api/v1/vm/snap1/snapshot"})
	if res.status != 202 {
		t.Fatalf("snapshot: %d %s", res.status, res.raw)
	}
	name := res.body["snap1"].(map[string]any)["snapshot"].(string)

	state := func() string {
		t.Helper()
		res := e.do(req{method: "GET", path: "/api/v1/vm/snap1/snapshot/" + name})
		if res.status != 200 || res.body["ok"] != true {
			t.Fatalf("GET snapshot: %d %s", res.status, res.raw)
		}
		return res.body["snap1"].(map[string]any)["state"].(string)
	}
	if got := state(); got != store.JobPending {
		t.Errorf("state = %q, want pending", got)
	}
	e.finishJobs()
	if got := state(); got != store.JobDone {
		t.Errorf("state = %q, want done", got)
	}
	if jobs, _ := e.st.Jobs(); len(jobs) != 0 {
		t.Errorf("a GET queued jobs: %+v", jobs)
	}

	list := e.do(req{method: "GET", path: "/api/v1/vm/snap1/snapshot"})
	snaps := list.body["snap1"].(map[string]any)["snapshots"].([]any)
	if list.status != 200 || len(snaps) != 1 {
		t.Errorf("list: %d %s", list.status, list.raw)
	}
	for _, tc := range []struct{ path string }{
		{"/api/v1/vm/snap1/snapshot/nosuch"},
		{"/api/v1/vm/nosuchvm/snapshot/" + name},
		{"/api/v1/vm/nosuchvm/snapshot"},
	} {
		if res := e.do(req{method: "GET", path: tc.path}); res.status != 404 || res.body["ok"] != false {
			t.Errorf("GET %s: %d %s, want 404 JSON", tc.path, res.status, res.raw)
		}
	}
}
