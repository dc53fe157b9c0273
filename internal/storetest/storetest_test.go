package storetest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/store"
)

// recorder is a testing.TB that keeps MustOpen's cleanups for the test to
// run and records the failures they report instead of failing the test.
type recorder struct {
	testing.TB // the real one: TempDir, Fatal
	cleanups   []func()
	failures   []string
}

func (r *recorder) Helper()          {}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Error(args ...any) {
	r.failures = append(r.failures, fmt.Sprint(args...))
}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

// end runs the cleanups, last registered first, as the testing package does.
func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func addVMs(tb testing.TB, s *store.Store, n int) {
	tb.Helper()
	for i := range n {
		if err := s.AddPending(store.VM{Hostname: "h" + strings.Repeat("x", i), Pool: "p"}); err != nil {
			tb.Fatal(err)
		}
	}
}

// closedStore opens a store through r, adds n VMs and closes it, as a test
// that closes its store does.
func closedStore(t *testing.T, r *recorder, n int) *store.Store {
	t.Helper()
	s := MustOpen(r)
	addVMs(t, s, n)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestMustOpen(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		r := &recorder{TB: t}
		s := MustOpen(r)
		if filepath.Base(s.Path) != "vmpooler.db" {
			t.Errorf("path %s, want vmpooler.db in a temp dir", s.Path)
		}
		addVMs(t, s, 3)
		r.end()
		if len(r.failures) != 0 {
			t.Errorf("a sound store failed the test: %q", r.failures)
		}
		if _, err := s.Get("h"); err == nil {
			t.Error("the store is still open after cleanup")
		}
	})
	t.Run("Options", func(t *testing.T) {
		r := &recorder{TB: t}
		path := filepath.Join(t.TempDir(), "x.db")
		at := time.Date(2015, 3, 11, 10, 0, 0, 0, time.UTC)
		s := MustOpen(r, Path(path), Now(clocktest.New(at).Now))
		if s.Path != path {
			t.Errorf("path %s, want %s", s.Path, path)
		}
		addVMs(t, s, 1)
		if vm, err := s.Get("h"); err != nil || !vm.Started.Equal(at) {
			t.Errorf("vm started %v (%v), want %v: the store is not on the clock", vm.Started, err, at)
		}
		r.end()
		if _, err := os.Stat(path); err != nil || len(r.failures) != 0 {
			t.Errorf("file: %v; failures: %q", err, r.failures)
		}
	})
	t.Run("ClosedByTheTest", func(t *testing.T) {
		r := &recorder{TB: t}
		closedStore(t, r, 3)
		r.end()
		if len(r.failures) != 0 {
			t.Errorf("a store the test closed failed the test: %q", r.failures)
		}
	})
	// A file damaged behind the store's back (the pages after the two meta
	// pages overwritten) fails the test at cleanup.
	t.Run("Damaged", func(t *testing.T) {
		r := &recorder{TB: t}
		s := closedStore(t, r, 50)
		f, err := os.OpenFile(s.Path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(strings.Repeat("\xa5", 4*4096)), 8192); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		r.end()
		if len(r.failures) != 1 || !strings.Contains(r.failures[0], "check on cleanup") || !strings.Contains(r.failures[0], s.Path) {
			t.Errorf("failures: %q, want one naming the check and %s", r.failures, s.Path)
		}
	})
}
