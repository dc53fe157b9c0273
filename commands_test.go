package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckNeverCreatesAFile(t *testing.T) {
	dir, cfgPath := tempConfig(t, fakeConfig("state/vmpooler.db", fakePool("a", 1)))
	os.Mkdir(filepath.Join(dir, "state"), 0o700)
	err := run(t.Context(), []string{"check", "-config", cfgPath}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("check of a missing database: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "state", "vmpooler.db")); !os.IsNotExist(err) {
		t.Errorf("check created the database: %v", err)
	}
	err = run(t.Context(), []string{"check", "-config", cfgPath, "-file", filepath.Join(dir, "nope.db")}, io.Discard, io.Discard)
	if err == nil {
		t.Error("check -file of a missing file: no error")
	}
}

func TestConfigPathsRelativeToTheFile(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "sub", "vmpooler.toml")
	os.Mkdir(filepath.Dir(cfgPath), 0o700)
	writeConfig(t, cfgPath, strings.Replace(fakeConfig("db/v.db", fakePool("a", 1)), "[config]\n", "[config]\nbackup_dir = \"../bk\"\n", 1)+
		"[auth]\nprovider = \"htpasswd\"\nfile = \"htpasswd\"\n")
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		env, want string
	}{{"", filepath.Join(dir, "sub", "db", "v.db")}, {"rel.db", filepath.Join(mustGetwd(t), "rel.db")}} {
		t.Setenv("VMPOOLER_DATABASE", tc.env)
		rel, err := filepath.Rel(mustGetwd(t), cfgPath) // a relative -config works too
		if err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(rel)
		if err != nil {
			t.Fatal(err)
		}
		if c.Global.Database != tc.want {
			t.Errorf("database (env %q) = %s, want %s", tc.env, c.Global.Database, tc.want)
		}
		if got, want := c.Auth.File, filepath.Join(dir, "sub", "htpasswd"); got != want {
			t.Errorf("[auth] file = %s, want %s", got, want)
		}
		if got, want := c.Global.BackupDir, filepath.Join(dir, "bk"); got != want {
			t.Errorf("backup_dir = %s, want %s", got, want)
		}
	}
}

func mustGetwd(t *testing.T) string {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return wd
}

func TestVersionAndHelp(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-version"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "vmpooler ") || !strings.Contains(out.String(), "commit") {
		t.Errorf("-version: %q", out.String())
	}
	out.Reset()
	if err := run(t.Context(), []string{"-h"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"backup", "restore", "check", "inventory", "simulator", "-version", "SIGHUP"} {
		if !strings.Contains(out.String(), cmd) {
			t.Errorf("-h does not list %s:\n%s", cmd, out.String())
		}
	}
	var errOut bytes.Buffer
	if err := run(t.Context(), []string{"backup", "-h"}, io.Discard, &errOut); err == nil || !strings.Contains(errOut.String(), "-out") {
		t.Errorf("backup -h: %v %s", err, errOut.String())
	}
}
