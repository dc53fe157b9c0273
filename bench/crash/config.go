package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Setup is what the harness's temporary configuration says.
type Setup struct {
	Listen   string // the pooler's API address, 127.0.0.1:<port>
	SimAddr  string // the standalone simulator's address, 127.0.0.1:<port>
	Database string
	Username string
	Password string
	Pools    []PoolSize
}

// PoolSize is one pool of the harness.
type PoolSize struct {
	Name string
	Size int
}

// Render writes the TOML configuration (keys as in vmpooler.toml.example).
// The simulator and the pooler read the same file.
func (s Setup) Render() string {
	var b strings.Builder
	q := strconv.Quote
	fmt.Fprintf(&b, "# Written by bench/crash.\n[config]\nlisten = %s\ndatabase = %s\n", q(s.Listen), q(s.Database))
	b.WriteString("domain = \"bench.test\"\ncheck_loop_delay = 1\ntask_limit = 10\nlog_level = \"warn\"\n")
	for _, p := range s.Pools {
		fmt.Fprintf(&b, "\n[[pools]]\nname = %s\ntemplate = %s\nfolder = %s\n", q(p.Name), q("templates/"+p.Name), q("vmpooler/"+p.Name))
		fmt.Fprintf(&b, "datastore = \"LocalDS_0\"\nclone_target = \"DC0_C0\"\nsize = %d\n", p.Size)
	}
	fmt.Fprintf(&b, "\n[providers.vsphere]\nserver = %s\nusername = %s\npassword = %s\n", q(s.SimAddr), q(s.Username), q(s.Password))
	b.WriteString("insecure = true\ndatacenter = \"DC0\"\nboot_delay = 0.2\n")
	return b.String()
}

// Validate checks the setup is one the harness can run.
func (s Setup) Validate() error {
	for _, a := range []string{s.Listen, s.SimAddr} {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			return fmt.Errorf("address %q: %w", a, err)
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("address %q is not loopback", a)
		}
	}
	if len(s.Pools) == 0 {
		return fmt.Errorf("no pools")
	}
	for _, p := range s.Pools {
		if p.Name == "" || strings.ContainsAny(p.Name, "/\" ") || p.Size < 1 {
			return fmt.Errorf("bad pool %+v", p)
		}
	}
	if s.Database == "" || s.Username == "" || s.Password == "" {
		return fmt.Errorf("database, username and password are required")
	}
	return nil
}

// WriteConfig writes the configuration to dir/vmpooler.toml (mode 0600: it
// holds the simulator's password) and returns its path.
func WriteConfig(dir string, s Setup) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "vmpooler.toml")
	return path, os.WriteFile(path, []byte(s.Render()), 0o600)
}

// freePort asks the kernel for an unused loopback port. Another process may
// take it before we use it; the harness fails clearly if so.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
