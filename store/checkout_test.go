package store

import (
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vmpooler/vmpooler/internal/errs"
)

func TestCheckout(t *testing.T) {
	s := MustOpenStore(t)
	a := fillReady(t, s, "a", "", 3)
	b := fillReady(t, s, "b", "", 2)

	t.Run("OldestFirstInRequestOrder", func(t *testing.T) {
		got, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"b", 1}, {"a", 2}}, Lifetime: 4, User: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{b[0], a[0], a[1]}; !slices.Equal(names(got), want) {
			t.Errorf("got %v, want %v", names(got), want)
		}
		for _, vm := range got {
			if vm.State != StateRunning || vm.CheckedOut.IsZero() || vm.Lifetime != 4 || vm.User != "bob" {
				t.Errorf("got %+v", vm)
			}
			if stored, _ := s.Get(vm.Hostname); stored.State != StateRunning || stored.User != "bob" {
				t.Errorf("stored %+v", stored)
			}
		}
	})
	t.Run("ShortPoolChangesNothing", func(t *testing.T) {
		before := s.Counts()
		_, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"a", 1}, {"b", 2}}})
		mustCode(t, err, errs.EEMPTY)
		if !strings.Contains(errs.ErrorMessage(err), "pool b") {
			t.Errorf("message %q does not name pool b", errs.ErrorMessage(err))
		}
		if after := s.Counts(); after["a"] != before["a"] || after["b"] != before["b"] {
			t.Errorf("counts changed: %+v → %+v", before, after)
		}
		if vm, _ := s.Get(a[2]); vm.State != StateReady {
			t.Errorf("%s is %s, want ready", a[2], vm.State)
		}
	})
	t.Run("SamePoolTwice", func(t *testing.T) {
		got, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"b", 1}, {"a", 1}}})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{b[1], a[2]}; !slices.Equal(names(got), want) {
			t.Errorf("got %v, want %v", names(got), want)
		}
		fillReady(t, s, "c", "", 2)
		_, err = s.Checkout(CheckoutRequest{Pools: []PoolCount{{"c", 2}, {"c", 1}}})
		mustCode(t, err, errs.EEMPTY)
		got, err = s.Checkout(CheckoutRequest{Pools: []PoolCount{{"c", 1}, {"c", 1}}})
		if err != nil || !slices.Equal(names(got), []string{"c-0", "c-1"}) {
			t.Errorf("got %v, %v", names(got), err)
		}
	})
	t.Run("UnknownPool", func(t *testing.T) {
		_, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"nope", 1}}})
		mustCode(t, err, errs.EEMPTY)
	})
	t.Run("Invalid", func(t *testing.T) {
		for _, req := range []CheckoutRequest{
			{},
			{Pools: []PoolCount{{"", 1}}},
			{Pools: []PoolCount{{"a\x00ready", 1}}},
			{Pools: []PoolCount{{"a", 0}}},
			{Pools: []PoolCount{{"a", 1}}, Lifetime: -1},
		} {
			_, err := s.Checkout(req)
			mustCode(t, err, errs.EINVALID)
		}
	})
	if got := s.Counts(); got["a"].Running != 3 || got["b"].Running != 2 || got["a"].Ready != 0 {
		t.Errorf("counts: %+v", got)
	}
}

// TestConcurrentCheckout hands out a pool of 1,000 VMs to 64 goroutines:
// every VM exactly once.
func TestConcurrentCheckout(t *testing.T) {
	s := MustOpenStore(t)
	const n, workers = 1000, 64
	fillReady(t, s, "p", "", n)
	drainConcurrently(t, n, workers, func(int) *Store { return s })
	if got := s.Counts()["p"]; got.Ready != 0 || got.Running != n {
		t.Errorf("counts: %+v", got)
	}
}

// TestConcurrentMultiPoolShort runs multi-pool checkouts where one pool is
// short beside single-pool checkouts sharing their batches: the short ones
// hand out nothing and leave both pools as they were; the others succeed.
func TestConcurrentMultiPoolShort(t *testing.T) {
	s := MustOpenStore(t)
	a := fillReady(t, s, "a", "", 40)
	b := fillReady(t, s, "b", "", 1)
	fillReady(t, s, "c", "", 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			_, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"a", 1}, {"b", 2}}})
			if errs.ErrorCode(err) != errs.EEMPTY {
				t.Errorf("short checkout: got %v, want EEMPTY", err)
			}
		})
		wg.Go(func() {
			if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"c", 1}}}); err != nil {
				t.Errorf("checkout from c: %v", err)
			}
		})
	}
	wg.Wait()
	got := s.Counts()
	if got["a"].Ready != 40 || got["b"].Ready != 1 || got["a"].Running+got["b"].Running != 0 {
		t.Errorf("a and b changed: %+v %+v", got["a"], got["b"])
	}
	if got["c"].Ready != 0 || got["c"].Running != 32 {
		t.Errorf("c: %+v, want all 32 running", got["c"])
	}
	ready, _ := s.List("a", StateReady)
	if !slices.Equal(names(ready), a) {
		t.Errorf("a's ready order changed")
	}
	if vm, _ := s.Get(b[0]); vm.State != StateReady {
		t.Errorf("%s is %s", b[0], vm.State)
	}
}

// drainConcurrently checks out pool p one VM at a time from workers
// goroutines (worker i on store(i)) until it is empty, and fails t unless
// the n VMs were each handed out exactly once.
func drainConcurrently(t *testing.T, n, workers int, store func(i int) *Store) {
	t.Helper()
	var (
		mu   sync.Mutex
		seen = map[string]int{}
		wg   sync.WaitGroup
	)
	for i := range workers {
		st := store(i)
		wg.Go(func() {
			for {
				vms, err := st.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}})
				if errs.ErrorCode(err) == errs.EEMPTY {
					return
				} else if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[vms[0].Hostname]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Errorf("handed out %d distinct vms, want %d", len(seen), n)
	}
	for h, c := range seen {
		if c != 1 {
			t.Errorf("%s handed out %d times", h, c)
		}
	}
}
