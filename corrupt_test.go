package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/store"
)

// TestCorruptDatabase: "vmpooler check" and start-up on a damaged file
// report "database corrupt" with the path and what to do, not a panic.
// Each gets its own copy: a panic inside bbolt's Open leaves that file
// locked until the process exits.
func TestCorruptDatabase(t *testing.T) {
	for _, cmd := range [][]string{{"check"}, {}} {
		dir := t.TempDir()
		db := filepath.Join(dir, "vmpooler.db")
		// By hand, not storetest.MustOpen: its check on cleanup would
		// (rightly) fail on the file this test damages.
		st := store.New(db)
		if err := st.Open(); err != nil {
			t.Fatal(err)
		}
		for i := range 50 {
			if err := st.AddPending(store.VM{Hostname: "h" + strings.Repeat("x", i), Pool: "a"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(db, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteAt([]byte(strings.Repeat("\xa5", 4*4096)), 8192) // the pages after the two meta pages
		f.Close()
		cfg := filepath.Join(dir, "vmpooler.toml")
		os.WriteFile(cfg, []byte("[config]\nlisten = \"127.0.0.1:0\"\ndatabase = \""+db+"\"\n"+minimal+"\n[providers.fake]\n"), 0o600)
		args := append(cmd, "-config", cfg)
		err = run(context.Background(), args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "database corrupt") || !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "backup") {
			t.Errorf("%v: got %v, want database corrupt naming %s and a backup", args, err, db)
		}
	}
}
