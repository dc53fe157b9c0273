package vsphere

import (
	"crypto/tls"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmware/govmomi/vim25/soap"
)

// vCenter's certificate is verified unless insecure: an untrusted one is
// refused with its subject and fingerprint and the keys to set; ca_file
// or a pinned thumbprint make it trusted. (The simulator's own
// self-signed certificate stands in for a VMCA-signed one.)
func TestTLSTrust(t *testing.T) {
	pools := testPools()
	addr := serveForTest(t, pools)
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	cert := conn.ConnectionState().PeerCertificates[0]
	conn.Close()
	sha256 := soap.ThumbprintSHA256(cert)
	open := func(c Config) error {
		c.Server, c.Username, c.Password, c.ReadyCheck = addr, "user", "pass", "tools"
		p := New(c, pools, simtest.Logger())
		err := p.Open(ctxT(t))
		if err == nil {
			p.Close()
		}
		return err
	}

	err = open(Config{})
	if err == nil {
		t.Fatal("Open trusted the simulator's self-signed certificate")
	}
	for _, want := range []string{"not trusted", "SHA-256 " + sha256, "ca_file", "thumbprint", "insecure = true"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := open(Config{Thumbprint: sha256}); err != nil {
		t.Errorf("Open with the SHA-256 thumbprint: %v", err)
	}
	if err := open(Config{Thumbprint: soap.ThumbprintSHA1(cert)}); err != nil {
		t.Errorf("Open with the SHA-1 thumbprint: %v", err)
	}
	if err := open(Config{Thumbprint: strings.Repeat("AB:", 31) + "AB"}); err == nil {
		t.Error("Open with a wrong thumbprint succeeded")
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := open(Config{CAFile: caFile}); err != nil {
		t.Errorf("Open with ca_file: %v", err)
	}
	if err := open(Config{CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("Open with a missing ca_file: %v, want an error naming ca_file", err)
	}
}
