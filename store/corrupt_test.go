package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corruptFile writes garbage over the bytes of path from off.
func corruptFile(tb testing.TB, path string, off int64, n int) {
	tb.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	junk := make([]byte, n)
	for i := range junk {
		junk[i] = byte(0xA5 ^ i)
	}
	if _, err := f.WriteAt(junk, off); err != nil {
		tb.Fatal(err)
	}
}

// TestCorruptFile: a damaged file gives ErrCorrupt naming the file and
// what to do, from Open or from Check, never a panic.
func TestCorruptFile(t *testing.T) {
	needFile(t)
	for _, c := range []struct {
		name string
		off  int64
		n    int
	}{
		{"meta pages", 0, 8192},
		{"data pages", 8192, 4 * 4096},
		{"everything", 0, 64 * 1024},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "vmpooler.db")
			// By hand, not MustOpenStoreAt: its cleanup check would
			// (rightly) fail on the file this test damages.
			s := New(path)
			if err := s.Open(); err != nil {
				t.Fatal(err)
			}
			fillReady(t, s, "p", "", 200)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			corruptFile(t, path, c.off, c.n)
			s = New(path)
			err := s.Open()
			if err == nil {
				err = s.Check()
				s.Close()
			}
			if err == nil {
				t.Fatal("no error for a corrupt file")
			}
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "backup") {
				t.Errorf("got %v, want ErrCorrupt naming %s and a backup", err, path)
			}
		})
	}
}
