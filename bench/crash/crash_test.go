package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testSetup() Setup {
	return Setup{Listen: "127.0.0.1:4000", SimAddr: "127.0.0.1:4001", Database: "/tmp/x/vmpooler.db",
		Username: "user", Password: "pa\"ss", Pools: []PoolSize{{"bench-a", 5}, {"bench-b", 10}}}
}

func TestWriteConfig(t *testing.T) {
	dir := t.TempDir()
	path, err := WriteConfig(dir, testSetup())
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"[config]\nlisten = \"127.0.0.1:4000\"\ndatabase = \"/tmp/x/vmpooler.db\"\n",
		"check_loop_delay = 1\n",
		"[[pools]]\nname = \"bench-a\"\ntemplate = \"templates/bench-a\"\nfolder = \"vmpooler/bench-a\"\n",
		"size = 5\n", "size = 10\n",
		"[providers.vsphere]\nserver = \"127.0.0.1:4001\"\nusername = \"user\"\npassword = \"pa\\\"ss\"\n",
		"insecure = true\n", "boot_delay = 0.2\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("config mode %v, want 0600", st.Mode().Perm())
	}
	if filepath.Dir(path) != dir {
		t.Errorf("config written to %s", path)
	}
}

func TestSetupValidate(t *testing.T) {
	for name, mut := range map[string]func(*Setup){
		"listen not loopback": func(s *Setup) { s.Listen = "0.0.0.0:4000" },
		"sim not loopback":    func(s *Setup) { s.SimAddr = "10.0.0.1:443" },
		"no port":             func(s *Setup) { s.Listen = "127.0.0.1" },
		"no pools":            func(s *Setup) { s.Pools = nil },
		"bad pool":            func(s *Setup) { s.Pools = []PoolSize{{"a/b", 5}} },
		"zero size":           func(s *Setup) { s.Pools = []PoolSize{{"a", 0}} },
		"no db":               func(s *Setup) { s.Database = "" },
	} {
		s := testSetup()
		mut(&s)
		if _, err := WriteConfig(t.TempDir(), s); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseStatusAndConverged(t *testing.T) {
	body := []byte(`{"status":{"ok":true},"pools":{"bench-a":{"ready":3,"pending":2,"running":4,"max":5},"bench-b":{"ready":10,"pending":0,"max":10}}}`)
	st, err := parseStatus(body)
	if err != nil {
		t.Fatal(err)
	}
	pools := []PoolSize{{"bench-a", 5}, {"bench-b", 10}}
	ok, fig := converged(pools, st)
	if !ok || !strings.Contains(fig, "bench-a ready 3 + pending 2 = 5 (size 5, running 4)") {
		t.Fatalf("converged = %v, %s", ok, fig)
	}
	if full(pools, st) {
		t.Error("full with pending VMs")
	}
	st["bench-a"] = PoolStatus{Ready: 5, Max: 5}
	if !full(pools, st) {
		t.Error("not full")
	}
	st["bench-b"] = PoolStatus{Ready: 9, Pending: 2}
	if ok, fig := converged(pools, st); ok || !strings.Contains(fig, "WRONG") {
		t.Errorf("overfilled pool passed: %s", fig)
	}
	delete(st, "bench-b")
	if ok, fig := converged(pools, st); ok || !strings.Contains(fig, "bench-b missing") {
		t.Errorf("missing pool passed: %s", fig)
	}
	if _, err := parseStatus([]byte(`{"status":{}}`)); err == nil {
		t.Error("status without pools accepted")
	}
}

func TestSets(t *testing.T) {
	a, b := lines("x\n y \n\nz\n"), lines("y\nw\n")
	if got := minus(a, b); strings.Join(got, ",") != "x,z" {
		t.Errorf("minus = %v", got)
	}
	if got := clip([]string{"a", "b", "c"}, 2); got != "a b … (1 more)" {
		t.Errorf("clip = %q", got)
	}
}

func TestKillTimes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := 60 * time.Second
	ts := killTimes(rng, 50, d)
	for i, k := range ts {
		if k < d/10 || k > d*85/100 || (i > 0 && k < ts[i-1]) {
			t.Fatalf("kill times out of range or order: %v", ts)
		}
	}
}

func TestReport(t *testing.T) {
	var r report
	r.add("one", true, "fine %d", 1)
	r.add("two", false, "bad")
	var buf bytes.Buffer
	r.write(&buf)
	if got, want := buf.String(), "PASS one: fine 1\nFAIL two: bad\nRESULT: FAIL (1 of 2 verifications failed)\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseFlags(t *testing.T) {
	var errb bytes.Buffer
	if _, err := parseFlags(nil, &errb); err == nil {
		t.Error("missing -bin accepted")
	}
	if _, err := parseFlags([]string{"-bin", "/nonexistent/vmpooler"}, &errb); err == nil {
		t.Error("missing binary accepted")
	}
	bin := filepath.Join(t.TempDir(), "vmpooler")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"-bin", bin, "-short", "-seed", "7"}, &errb)
	if err != nil || o.kills != 2 || o.duration != 15*time.Second || o.seed != 7 || o.bin != bin {
		t.Errorf("short: %+v, %v", o, err)
	}
	if _, err := parseFlags([]string{"-bin", bin, "-clients", "0"}, &errb); err == nil {
		t.Error("-clients 0 accepted")
	}
}
