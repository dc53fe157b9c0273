package store

import (
	"testing"
	"time"
)

// Imports write in one transaction each, skip what exists (so a second
// run writes nothing) and what is invalid, and keep the store consistent.
func TestImport(t *testing.T) {
	s := MustOpenStore(t)
	id := func(tok string) string { return "id-" + tok[:2] }
	if err := s.CreateToken(Token{Token: "ex-existing", User: "carol"}); err != nil {
		t.Fatal(err)
	}
	created := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	toks := []Token{
		{Token: "t1-alice", User: "alice", Created: created, LastUsed: created.Add(time.Hour)},
		{Token: "ex-existing", User: "mallory"},
		{Token: "nu-nouser"},
	}
	r, err := s.ImportTokens(toks, id)
	if err != nil {
		t.Fatal(err)
	}
	if r.Imported != 1 || r.Skipped["id-ex"] != "already in the database" || r.Skipped["id-nu"] == "" {
		t.Errorf("tokens: %+v", r)
	}
	if got, _ := s.GetToken("ex-existing"); got.User != "carol" {
		t.Errorf("an existing token was overwritten: %+v", got)
	}
	if got, _ := s.TokensByUser("alice"); len(got) != 1 || !got[0].Created.Equal(created) || !got[0].LastUsed.Equal(created.Add(time.Hour)) {
		t.Errorf("alice's tokens: %+v", got)
	}
	at := s.Now().Add(-3 * time.Hour).UTC().Truncate(time.Second)
	vms := []VM{
		{Hostname: "h1", Pool: "a", Template: "t/a", CheckedOut: at, Lifetime: 5, User: "alice"},
		{Hostname: "", Pool: "a"},
		{Hostname: "h2", Pool: ""},
	}
	r, err = s.ImportRunning(vms)
	if err != nil {
		t.Fatal(err)
	}
	if r.Imported != 1 || len(r.Skipped) != 2 {
		t.Errorf("vms: %+v", r)
	}
	vm, err := s.Get("h1")
	if err != nil || vm.State != StateRunning || !vm.CheckedOut.Equal(at) || vm.Lifetime != 5 || vm.User != "alice" {
		t.Errorf("h1 = %+v, %v", vm, err)
	}
	if c := s.Counts()["a"]; c.Running != 1 {
		t.Errorf("running count = %d, want 1", c.Running)
	}
	r, err = s.ImportRunning(vms[:1])
	if err != nil || r.Imported != 0 || r.Skipped["h1"] != "already in the database" {
		t.Errorf("second import: %+v, %v", r, err)
	}
	mustCheck(t, s)
}

func TestPoolFolders(t *testing.T) {
	s := MustOpenStore(t)
	if err := s.RememberFolders(map[string]PoolFolder{"a": {"DC0", "f/a"}, "b": {"", "f/b"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.RememberFolders(map[string]PoolFolder{"a": {"DC0", "f/a2"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.PoolFolders()
	if err != nil || len(got) != 2 || got["a"].Folder != "f/a2" || got["b"].Folder != "f/b" {
		t.Errorf("folders = %v, %v", got, err)
	}
	if err := s.ForgetFolder("b"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PoolFolders(); len(got) != 1 {
		t.Errorf("after forget: %v", got)
	}
}
