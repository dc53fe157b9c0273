package store

import (
	"path/filepath"
	"testing"
	"time"
)

// TestTwoProcessesOnOneEtcd runs two stores on one etcd prefix, as two
// pooler replicas do: concurrent checkouts from both (with the checkout
// window) hand every VM out once, and each store's counts follow the
// other's writes without a scan.
func TestTwoProcessesOnOneEtcd(t *testing.T) {
	runOnce(t)
	path := filepath.Join(t.TempDir(), "shared")
	a := mustOpenOn(t, path, time.Now, true)
	b := mustOpenOn(t, path, time.Now, true)
	a.CheckoutWindow, b.CheckoutWindow = 4, 4
	if a.Instance() != b.Instance() {
		t.Fatalf("instances %s and %s: one database, one pooler", a.Instance(), b.Instance())
	}
	const n = 60
	fillReady(t, a, "p", "", n)
	drainConcurrently(t, n, 16, func(i int) *Store { return []*Store{a, b}[i%2] })
	for _, st := range []*Store{a, b} {
		deadline := time.Now().Add(5 * time.Second)
		for st.Counts()["p"].Running != n && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if got := st.Counts()["p"]; got.Ready != 0 || got.Running != n {
			t.Errorf("counts on one of the two: %+v, want %d running", got, n)
		}
	}
}

// TestCheckoutWindow: with a window, a checkout takes VMs among the oldest
// count+window, never a newer one; without, exactly the oldest.
func TestCheckoutWindow(t *testing.T) {
	s := MustOpenStore(t)
	hosts := fillReady(t, s, "p", "", 10)
	s.CheckoutWindow = 3
	vms, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 2}}})
	if err != nil {
		t.Fatal(err)
	}
	oldest := map[string]bool{hosts[0]: true, hosts[1]: true, hosts[2]: true, hosts[3]: true, hosts[4]: true}
	for _, vm := range vms {
		if !oldest[vm.Hostname] {
			t.Errorf("took %s, not among the oldest 2+3 %v", vm.Hostname, hosts[:5])
		}
	}
	s.CheckoutWindow = 0
	left, _ := s.List("p", StateReady)
	vms, err = s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}})
	if err != nil || vms[0].Hostname != left[0].Hostname {
		t.Errorf("without a window took %v, want the oldest %s (%v)", names(vms), left[0].Hostname, err)
	}
}
