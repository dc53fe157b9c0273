// Package storetest opens stores for the tests of the packages above the
// store: a real bbolt file in a temporary directory (STYLE.md: a real file
// beats a mock), closed and checked when the test ends.
//
// The store's own internal tests cannot import it (it imports store); they
// have MustOpenStore in store/store_test.go, which runs the same check.
package storetest

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/store"
)

// Option sets a field of the store before MustOpen opens it.
type Option func(*store.Store)

// Path puts the file at path instead of vmpooler.db in a new tb.TempDir().
func Path(path string) Option {
	return func(s *store.Store) { s.Path = path }
}

// Now gives the store the clock now (a clocktest.Clock's Now) instead of
// time.Now.
func Now(now func() time.Time) Option {
	return func(s *store.Store) { s.Now = now }
}

// MustOpen opens a store (by default vmpooler.db in a new tb.TempDir(), on
// time.Now) or fails tb. When the test ends it closes the store, unless the
// test closed it already, and runs store.VerifyFile on the file: bbolt's
// consistency check and the store's invariants (each VM record in exactly
// one index, tokens and requests matching their indexes). A failed Close
// or a problem the check finds fails tb.
//
// Register what writes to the store (a manager, a server) after MustOpen,
// so that its cleanup stops it before this one closes the store.
func MustOpen(tb testing.TB, opts ...Option) *store.Store {
	tb.Helper()
	s := store.New("")
	for _, o := range opts {
		o(s)
	}
	if s.Path == "" {
		s.Path = filepath.Join(tb.TempDir(), "vmpooler.db")
	}
	if err := s.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close %s: %v", s.Path, err)
			return
		}
		if err := store.VerifyFile(s.Path); err != nil {
			tb.Errorf("check on cleanup: %v", err)
		}
	})
	return s
}
