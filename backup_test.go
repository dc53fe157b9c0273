package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Twenty backups taken through `vmpooler backup` while clients check VMs
// out and return them: every copy passes `vmpooler check`; one of them,
// restored with `vmpooler restore` after the pooler stopped, starts and
// serves.
func TestBackupUnderLoad(t *testing.T) {
	dir, cfgPath := tempConfig(t, fakeConfig("vmpooler.db", fakePool("load", 150)))
	r := startPooler(t, cfgPath)
	waitReady(t, r.base, map[string]int{"load": 150})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var checkouts atomic.Int64
	runClients(&wg, 4, stop, func() bool {
		code, host := checkout(t, r.base, "load")
		if code != 200 {
			return true // pool empty for a moment
		}
		checkouts.Add(1)
		req, _ := http.NewRequest(http.MethodDelete, r.base+"/api/v1/vm/"+host, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return true
	})
	var copies []string
	for i := range 20 {
		out := filepath.Join(dir, fmt.Sprintf("copy-%02d.db", i))
		var stdout bytes.Buffer
		if err := run(t.Context(), []string{"backup", "-config", cfgPath, "-out", out}, &stdout, io.Discard); err != nil {
			t.Fatalf("backup %d: %v", i, err)
		}
		if !strings.Contains(stdout.String(), "online, from the running pooler") {
			t.Fatalf("backup %d was not taken online: %s", i, stdout.String())
		}
		if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("backup %d: %v %v", i, fi.Mode(), err)
		}
		copies = append(copies, out)
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d checkouts and returns during the 20 backups", checkouts.Load())
	if checkouts.Load() < 20 {
		t.Errorf("only %d checkouts during the backups: not under load", checkouts.Load())
	}
	for i, c := range copies {
		var stdout bytes.Buffer
		if err := run(t.Context(), []string{"check", "-config", cfgPath, "-file", c}, &stdout, io.Discard); err != nil {
			t.Errorf("check of copy %d: %v", i, err)
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, ".*.tmp-*")); len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	// Restore refuses while the pooler runs, then works once it stopped.
	if err := run(t.Context(), []string{"restore", "-config", cfgPath, "-in", copies[10]}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "stop the pooler") {
		t.Errorf("restore while running: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"restore", "-config", cfgPath, "-in", copies[10]}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if kept, _ := filepath.Glob(filepath.Join(dir, "vmpooler.db.before-restore-*")); len(kept) != 1 {
		t.Errorf("replaced database kept as %v", kept)
	}
	t.Log(strings.TrimSpace(stdout.String()))
	r2 := startPooler(t, cfgPath)
	if strings.Contains(r2.log.String(), "created new database") {
		t.Error("restored database announced as new")
	}
	waitFor(t, "restored pooler serves a checkout", func() (bool, any) {
		code, host := checkout(t, r2.base, "load")
		return code == 200 && host != "", code
	})
}

func TestBackupOfflineAndRestoreRefusesBadFile(t *testing.T) {
	dir, cfgPath := tempConfig(t, fakeConfig("vmpooler.db", fakePool("a", 1)))
	out := filepath.Join(dir, "b.db")
	err := run(t.Context(), []string{"backup", "-config", cfgPath, "-out", out}, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("backup of a missing database: no error")
	}
	if _, err := os.Stat(filepath.Join(dir, "vmpooler.db")); err == nil {
		t.Fatal("backup created the database")
	}
	r := startPooler(t, cfgPath)
	waitReady(t, r.base, map[string]int{"a": 1})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	var stdout bytes.Buffer
	if err := run(t.Context(), []string{"backup", "-config", cfgPath, "-out", out}, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "offline") {
		t.Errorf("offline backup: %s", stdout.String())
	}
	before, _ := os.ReadFile(filepath.Join(dir, "vmpooler.db"))
	data, _ := os.ReadFile(out)
	bad := filepath.Join(dir, "bad.db")
	os.WriteFile(bad, data[:len(data)/2], 0o600)
	if err := run(t.Context(), []string{"restore", "-config", cfgPath, "-in", bad}, io.Discard, io.Discard); err == nil {
		t.Error("restore of a truncated file: no error")
	}
	after, _ := os.ReadFile(filepath.Join(dir, "vmpooler.db"))
	if !bytes.Equal(before, after) {
		t.Error("a refused restore changed the database")
	}
}

// With backup_dir set and no recent backup there, one is taken at start;
// scheduled backups keep the newest backup_keep and leave other files.
func TestScheduledBackupKeeps(t *testing.T) {
	text := strings.Replace(fakeConfig("vmpooler.db", fakePool("a", 1)), "[config]\n", "[config]\nbackup_dir = \"backups\"\nbackup_keep = 3\n", 1)
	dir, cfgPath := tempConfig(t, text)
	bdir := filepath.Join(dir, "backups")
	os.MkdirAll(bdir, 0o700)
	other := filepath.Join(bdir, "notes.txt")
	os.WriteFile(other, []byte("x"), 0o600)
	r := startPooler(t, cfgPath)
	waitFor(t, "a backup at start", func() (bool, any) {
		got, _ := filepath.Glob(filepath.Join(bdir, "vmpooler-*.db"))
		return len(got) == 1, got
	})
	if due, err := backupDue(bdir, 24*time.Hour, time.Now()); err != nil || due {
		t.Errorf("backup due right after one was taken: %v %v", due, err)
	}
	if due, _ := backupDue(bdir, 24*time.Hour, time.Now().Add(25*time.Hour)); !due {
		t.Error("backup not due a day later")
	}
	now := time.Now().Add(time.Hour)
	var made []string
	for i := range 5 {
		p, err := r.d.scheduledBackup(now.Add(time.Duration(i) * time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		made = append(made, p)
	}
	got, _ := filepath.Glob(filepath.Join(bdir, "vmpooler-*.db"))
	if len(got) != 3 || got[0] != made[2] || got[2] != made[4] {
		t.Errorf("kept %v, want the newest 3 of %v", got, made)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file in backup_dir was touched: %v", err)
	}
	for _, p := range got {
		if err := run(t.Context(), []string{"check", "-config", cfgPath, "-file", p}, io.Discard, io.Discard); err != nil {
			t.Errorf("check %s: %v", p, err)
		}
	}
}
