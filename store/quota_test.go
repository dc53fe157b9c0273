package store

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// One user, 32 concurrent checkouts of one VM each, a quota of 5: exactly
// 5 are handed out, the rest refused with EFORBIDDEN naming the limit.
func TestQuotaConcurrentCheckouts(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "a", "", 40)
	q := &Quota{Total: 5}
	var ok, refused atomic.Int32
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			_, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"a", 1}}, User: "alice", Quota: q})
			var qe *QuotaError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &qe) && errs.ErrorCode(err) == errs.EFORBIDDEN && qe.Limit == 5 && qe.Running == 5:
				refused.Add(1)
			default:
				t.Errorf("checkout: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 5 || refused.Load() != 27 {
		t.Errorf("handed out %d, refused %d; want 5 and 27", ok.Load(), refused.Load())
	}
	if n := s.Counts()["a"].Running; n != 5 {
		t.Errorf("%d running, want 5", n)
	}
	// Another user is not touched by alice's quota.
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"a", 5}}, User: "bob", Quota: q}); err != nil {
		t.Errorf("bob: %v", err)
	}
}

func TestQuotaAllOrNothing(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "a", "", 5)
	fillReady(t, s, "b", "", 5)
	q := &Quota{Total: 4, PerPool: map[string]int{"b": 1}}
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"a", 2}}, User: "alice", Quota: q}); err != nil {
		t.Fatal(err)
	}
	// 2 held + 3 asked > 4: refused, and nothing moves.
	_, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"a", 1}, {"b", 2}}, User: "alice", Quota: q})
	mustCode(t, err, errs.EFORBIDDEN)
	var qe *QuotaError
	if !errors.As(err, &qe) || qe.Limit != 4 || qe.Running != 2 || qe.Requested != 3 || qe.Pool != "" {
		t.Errorf("got %#v", err)
	}
	if c := s.Counts(); c["a"].Ready != 3 || c["b"].Ready != 5 {
		t.Errorf("counts changed: %+v", c)
	}
	// The per-pool limit of b.
	_, err = s.Checkout(CheckoutRequest{Pools: []PoolCount{{"b", 2}}, User: "alice", Quota: q})
	if !errors.As(err, &qe) || qe.Pool != "b" || qe.Limit != 1 || qe.Running != 0 {
		t.Errorf("got %v", err)
	}
	// Anonymous checkouts have no user to count.
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"b", 3}}, Quota: q}); err != nil {
		t.Errorf("anonymous: %v", err)
	}
	// Ondemand requests count what they are still owed.
	if err := s.CreateRequest(Request{ID: "r1", User: "alice", Requested: []PoolCount{{"a", 2}}, Quota: q}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Checkout(CheckoutRequest{Pools: []PoolCount{{"a", 1}}, User: "alice", Quota: q})
	if !errors.As(err, &qe) || qe.Running != 4 {
		t.Errorf("after an ondemand request of 2: %v", err)
	}
	err = s.CreateRequest(Request{ID: "r2", User: "alice", Requested: []PoolCount{{"a", 1}}, Quota: q})
	mustCode(t, err, errs.EFORBIDDEN)
	if _, err := s.GetRequest("r2"); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("refused request stored: %v", err)
	}
}
