package store

import (
	"maps"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// TestCopyBetweenEngines moves a store's state from a bbolt file to etcd
// and back to a new file: every record arrives, the copies pass the check,
// the instance id goes along, and new jobs do not reuse copied ids.
func TestCopyBetweenEngines(t *testing.T) {
	runOnce(t)
	src := MustOpenStore(t)
	fillReady(t, src, "p", "", 5)
	vms, err := src.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 2}}, User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Change(vms[0].Hostname, VMChange{Tags: map[string]string{"team": "qa"}, DiskGB: 4}, Anyone); err != nil {
		t.Fatal(err)
	}
	if err := src.Destroy("p-4", "gone"); err != nil {
		t.Fatal(err)
	}
	if err := src.CreateToken(Token{Token: "tok-1", User: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := src.CreateRequest(Request{ID: "r1", Requested: []PoolCount{{"p", 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := src.PutOverride("p", Override{Template: "tpl/2"}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	mid := mustOpenOn(t, filepath.Join(dir, "etcd"), src.Now, true)
	res, err := src.CopyTo(mid)
	if err != nil {
		t.Fatal(err)
	}
	if res["vms"] != 5 || res["tokens"] != 1 || res["requests"] != 1 || res["jobs"] != 1 {
		t.Errorf("copied %v", res)
	}
	if _, err := src.CopyTo(mid); errs.ErrorCode(err) != errs.ECONFLICT {
		t.Errorf("copy into a store that holds records: %v, want ECONFLICT", err)
	}
	mid = reopen(t, mid) // the instance id is read at open
	back := MustOpenStoreAt(t, filepath.Join(dir, "back.db"), nil)
	if _, err := mid.CopyTo(back); err != nil {
		t.Fatal(err)
	}
	back = reopen(t, back)
	for _, st := range []*Store{mid, back} {
		mustCheck(t, st)
		if st.Instance() != src.Instance() {
			t.Errorf("%s: instance %s, want %s", st.Path, st.Instance(), src.Instance())
		}
		for _, state := range []State{StateReady, StateRunning, StateDestroyed} {
			a, _ := src.List("p", state)
			b, _ := st.List("p", state)
			if !slices.EqualFunc(a, b, func(x, y VM) bool { return x.Hostname == y.Hostname && x.User == y.User && maps.Equal(x.Tags, y.Tags) }) {
				t.Errorf("%s: %s vms %v, want %v", st.Path, state, names(b), names(a))
			}
		}
		if tok, err := st.GetToken("tok-1"); err != nil || tok.User != "alice" {
			t.Errorf("%s: token %+v, %v", st.Path, tok, err)
		}
		if ovr, _ := st.Overrides(); ovr["p"].Template != "tpl/2" {
			t.Errorf("%s: overrides %+v", st.Path, ovr)
		}
		if err := st.RequestSnapshot(vms[1].Hostname, "s1", Anyone); err != nil {
			t.Fatal(err)
		}
		jobs, _ := st.Jobs()
		if len(jobs) != 2 || jobs[0].ID == jobs[1].ID {
			t.Errorf("%s: jobs %+v: a new job must not take a copied id", st.Path, jobs)
		}
	}
}
