package auth

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSetFile(t *testing.T) {
	a, logs := MustNew(t, &Config{Provider: ProviderHtpasswd, File: fixture})
	if err := a.Login("alice", "wonderland"); err != nil {
		t.Fatalf("login from the first file: %v", err)
	}
	if strings.Contains(logs.String(), "EXAMPLE") {
		t.Errorf("example-user warning for a file without it:\n%s", logs)
	}
	other := filepath.Join(t.TempDir(), "htpasswd")
	writeFile(t, other, hashLine(t, "dave", "pw"), time.Now())
	if err := a.SetFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("SetFile of a missing file: no error")
	}
	if err := a.Login("alice", "wonderland"); err != nil {
		t.Errorf("a refused SetFile changed the users: %v", err)
	}
	if err := a.SetFile(other); err != nil {
		t.Fatal(err)
	}
	if err := a.Login("dave", "pw"); err != nil {
		t.Errorf("login from the new file: %v", err)
	}
	if err := a.Login("alice", "wonderland"); err == nil {
		t.Error("user of the old file still accepted")
	}
}

// The documented example user (testdata/htpasswd at the repository root)
// is warned about while it exists.
func TestExampleUserWarning(t *testing.T) {
	_, logs := MustNew(t, &Config{Provider: ProviderHtpasswd, File: "../testdata/htpasswd"})
	if !strings.Contains(logs.String(), "EXAMPLE user") || !strings.Contains(logs.String(), "user=jdoe") {
		t.Errorf("no warning about the example user:\n%s", logs)
	}
}
