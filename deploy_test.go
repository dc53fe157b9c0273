package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd unit passes `systemd-analyze verify` without a warning, and
// has what the service needs. ExecStart's binary is swapped for an
// executable that exists here, since verify checks it.
func TestSystemdUnit(t *testing.T) {
	data, err := os.ReadFile("deploy/vmpooler.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(data)
	for _, want := range []string{
		"User=vmpooler", "StateDirectory=vmpooler", "ConfigurationDirectory=vmpooler",
		"ExecReload=/bin/kill -HUP $MAINPID", "Restart=on-failure", "NoNewPrivileges=yes",
		"ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes", "\nCapabilityBoundingSet=\n",
		"ExecStart=/usr/bin/vmpooler serve -config /etc/vmpooler/vmpooler.toml",
	} {
		if !strings.Contains(unit, want) {
			t.Errorf("unit lacks %q", want)
		}
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (Debian package systemd): unit not verified")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vmpooler.service")
	writeConfig(t, path, strings.ReplaceAll(unit, "/usr/bin/vmpooler", self))
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// The configuration the .deb installs (the example with its state moved to
// /var/lib/vmpooler, as deploy/build-deb.sh writes it) loads.
func TestPackagedConfig(t *testing.T) {
	data, err := os.ReadFile("vmpooler.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), "\ndatabase = \"vmpooler.db\"", "\ndatabase = \"/var/lib/vmpooler/vmpooler.db\"", 1)
	text = strings.Replace(text, "\n# backup_dir = \"backups\"", "\nbackup_dir = \"/var/lib/vmpooler/backups\"", 1)
	c, err := ParseConfig("/etc/vmpooler/vmpooler.toml", text, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if c.Global.Database != "/var/lib/vmpooler/vmpooler.db" || c.Global.BackupDir != "/var/lib/vmpooler/backups" {
		t.Errorf("the example's lines that build-deb.sh rewrites changed: database %q, backup_dir %q", c.Global.Database, c.Global.BackupDir)
	}
}
