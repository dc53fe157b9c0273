package store

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// The instance id is made with the file and kept for its life; another
// file is another instance. Adopt takes effect at the next Open; AddRunning
// records a taken-over VM as running with its checkout time.
func TestInstanceAndAdopt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.db")
	s := MustOpenStoreAt(t, path, nil)
	id := s.Instance()
	if !ValidInstance(id) {
		t.Fatalf("instance id %q is not valid", id)
	}
	other := MustOpenStore(t)
	if other.Instance() == id || !ValidInstance(other.Instance()) {
		t.Fatalf("two files share instance %q", id)
	}
	for _, bad := range []string{"", "short", "UPPERCASEUPPERCA", "abcdefghijklmno1", id} {
		if err := s.Adopt(bad); errs.ErrorCode(err) != errs.EINVALID {
			t.Errorf("Adopt(%q) = %v, want EINVALID", bad, err)
		}
	}
	if err := s.Adopt(other.Instance()); err != nil {
		t.Fatal(err)
	}
	if err := s.Adopt(other.Instance()); err != nil { // twice: once recorded
		t.Fatal(err)
	}
	if len(s.Adopted()) != 0 {
		t.Errorf("Adopted before reopening = %v, want none yet", s.Adopted())
	}
	at := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	if err := s.AddRunning(VM{Hostname: "taken", Pool: "p", CheckedOut: at, User: "jdoe"}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddRunning(VM{Hostname: "taken", Pool: "p"}); errs.ErrorCode(err) != errs.ECONFLICT {
		t.Errorf("AddRunning twice: %v, want ECONFLICT", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = MustOpenStoreAt(t, path, nil)
	if s.Instance() != id {
		t.Errorf("instance after reopening = %q, want %q", s.Instance(), id)
	}
	if got := s.Adopted(); !slices.Equal(got, []string{other.Instance()}) {
		t.Errorf("Adopted = %v, want [%s]", got, other.Instance())
	}
	vm, err := s.Get("taken")
	if err != nil || vm.State != StateRunning || !vm.CheckedOut.Equal(at) || vm.User != "jdoe" {
		t.Errorf("taken-over vm = %+v, %v", vm, err)
	}
	if c := s.Counts()["p"]; c.Running != 1 {
		t.Errorf("counts = %+v, want 1 running", c)
	}
}
