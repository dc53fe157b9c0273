package store

import (
	"slices"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// pendingFor adds a pending VM of pool that belongs to request id.
func pendingFor(t *testing.T, s *Store, host, pool, id string) {
	t.Helper()
	if err := s.AddPending(VM{Hostname: host, Pool: pool, RequestID: id}); err != nil {
		t.Fatal(err)
	}
}

func TestRequest(t *testing.T) {
	s := MustOpenStore(t)
	req := Request{ID: "r1", Requested: []PoolCount{{"a", 2}, {"b", 1}}, User: "alice", Lifetime: 3}
	if err := s.CreateRequest(req); err != nil {
		t.Fatal(err)
	}
	mustCode(t, s.CreateRequest(req), errs.ECONFLICT)
	for _, bad := range []Request{{}, {ID: "x"}, {ID: "x", Requested: []PoolCount{{"a", 0}}},
		{ID: "x", Requested: []PoolCount{{"", 1}}}, {ID: "x", Requested: []PoolCount{{"a", 1}}, Lifetime: -1}} {
		mustCode(t, s.CreateRequest(bad), errs.EINVALID)
	}
	s.CreateRequest(Request{ID: "r2", Requested: []PoolCount{{"a", 1}}})
	pend, _ := s.PendingRequests()
	if got := []string{pend[0].ID, pend[1].ID}; len(pend) != 2 || !slices.Equal(got, []string{"r1", "r2"}) {
		t.Fatalf("pending: got %+v", pend)
	}

	for _, h := range []string{"a1", "a2", "a3"} {
		pendingFor(t, s, h, "a", "r1")
	}
	pendingFor(t, s, "b1", "b", "r1")
	for _, h := range []string{"a1", "b1"} {
		if err := s.MarkReady(h, "10.0.0.9"); err != nil {
			t.Fatal(err)
		}
	}
	vm, _ := s.Get("a1")
	if vm.State != StateRunning || vm.CheckedOut.IsZero() || vm.Ready.IsZero() || vm.User != "alice" || vm.Lifetime != 3 {
		t.Errorf("delivered vm: got %+v", vm)
	}
	if r, _ := s.GetRequest("r1"); r.State != RequestPending || !slices.Equal(r.Hosts["a"], []string{"a1"}) {
		t.Errorf("request after 2 of 3: %+v", r)
	}
	s.MarkReady("a2", "")
	r, _ := s.GetRequest("r1")
	if r.State != RequestReady || !slices.Equal(r.Hosts["a"], []string{"a1", "a2"}) || !slices.Equal(r.Hosts["b"], []string{"b1"}) {
		t.Errorf("complete request: %+v", r)
	}
	s.MarkReady("a3", "") // one too many: not kept running
	if vm, _ := s.Get("a3"); vm.State != StateCompleted {
		t.Errorf("extra vm: got %s, want completed", vm.State)
	}
	if pend, _ := s.PendingRequests(); len(pend) != 1 || pend[0].ID != "r2" {
		t.Errorf("pending after ready: %+v", pend)
	}
	if got := s.Counts(); got["a"].Running != 2 || got["b"].Running != 1 || got["a"].Ready != 0 {
		t.Errorf("counts: %+v", got)
	}

	t.Run("DeleteCompletesRunning", func(t *testing.T) {
		if err := s.FinishRequest("r1", RequestDeleted, ""); err != nil {
			t.Fatal(err)
		}
		for _, h := range []string{"a1", "a2", "b1"} {
			if vm, _ := s.Get(h); vm.State != StateCompleted {
				t.Errorf("%s: got %s, want completed", h, vm.State)
			}
		}
		if err := s.FinishRequest("r1", RequestReady, ""); err != nil {
			t.Errorf("ready after deleted: %v", err)
		}
		if r, _ := s.GetRequest("r1"); r.State != RequestDeleted {
			t.Errorf("deleted request overwritten: %s", r.State)
		}
	})
	t.Run("DeletedRequestVMGoesToCompleted", func(t *testing.T) {
		pendingFor(t, s, "late", "a", "r2")
		s.FinishRequest("r2", RequestDeleted, "")
		s.FinishRequest("r2", RequestFailed, "too late")
		if err := s.MarkReady("late", ""); err != nil {
			t.Fatal(err)
		}
		if vm, _ := s.Get("late"); vm.State != StateCompleted {
			t.Errorf("got %s, want completed", vm.State)
		}
		if r, _ := s.GetRequest("r2"); r.State != RequestDeleted || len(r.Hosts) != 0 {
			t.Errorf("request: %+v", r)
		}
	})
	t.Run("Failed", func(t *testing.T) {
		s.CreateRequest(Request{ID: "r3", Requested: []PoolCount{{"a", 1}}})
		if err := s.FinishRequest("r3", RequestFailed, "no capacity"); err != nil {
			t.Fatal(err)
		}
		if r, _ := s.GetRequest("r3"); r.State != RequestFailed || r.Error != "no capacity" {
			t.Errorf("got %+v", r)
		}
		mustCode(t, s.FinishRequest("r3", RequestReady, ""), errs.ECONFLICT)
		if err := s.FinishRequest("r3", RequestDeleted, ""); err != nil {
			t.Errorf("delete failed request: %v", err)
		}
	})
	t.Run("Errors", func(t *testing.T) {
		mustCode(t, s.FinishRequest("nope", RequestReady, ""), errs.ENOTFOUND)
		mustCode(t, s.FinishRequest("r1", RequestPending, ""), errs.EINVALID)
		_, err := s.GetRequest("nope")
		mustCode(t, err, errs.ENOTFOUND)
	})
	if pend, _ := s.PendingRequests(); len(pend) != 0 {
		t.Errorf("pending at end: %+v", pend)
	}
}

// Purge removes finished requests older than Retention and keeps pending ones.
func TestPurgeRequests(t *testing.T) {
	clk := newTestClock()
	s := MustOpenStoreAt(t, t.TempDir()+"/x.db", clk)
	s.Retention = time.Hour
	for _, id := range []string{"done", "failed", "pending"} {
		if err := s.CreateRequest(Request{ID: id, Requested: []PoolCount{{"a", 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	s.FinishRequest("done", RequestReady, "")
	s.FinishRequest("failed", RequestFailed, "no capacity")
	if _, err := s.Purge(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"done", "failed", "pending"} {
		if _, err := s.GetRequest(id); err != nil {
			t.Errorf("%s purged too early: %v", id, err)
		}
	}
	clk.Advance(2 * time.Hour)
	if _, err := s.Purge(); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"done", "failed"} {
		_, err := s.GetRequest(id)
		mustCode(t, err, errs.ENOTFOUND)
	}
	if _, err := s.GetRequest("pending"); err != nil {
		t.Errorf("pending request purged: %v", err)
	}
}
