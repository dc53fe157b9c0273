package store

import "testing"

// Unassign takes a handed-out VM back to ready, first in line again.
func TestUnassign(t *testing.T) {
	s := MustOpenStore(t)
	for _, h := range []string{"old", "new"} {
		if err := s.AddPending(VM{Hostname: h, Pool: "p", Template: "t"}); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkReady(h, "10.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	vms, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{Pool: "p", Count: 1}}, User: "jdoe", Lifetime: 5})
	if err != nil || vms[0].Hostname != "old" {
		t.Fatalf("checkout: %v %v", vms, err)
	}
	if err := s.Unassign([]string{"old", "nosuch", "new"}); err != nil {
		t.Fatal(err)
	}
	vm, _ := s.Get("old")
	if vm.State != StateReady || vm.User != "" || vm.Lifetime != 0 || !vm.CheckedOut.IsZero() {
		t.Errorf("unassigned vm = %+v", vm)
	}
	if c := s.Counts()["p"]; c.Ready != 2 || c.Running != 0 {
		t.Errorf("counts = %+v", c)
	}
	again, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{Pool: "p", Count: 1}}})
	if err != nil || again[0].Hostname != "old" {
		t.Errorf("next checkout got %v %v, want old (first in line)", again, err)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}
