package store

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBackupSizedAndVerifyFile(t *testing.T) {
	needFile(t)
	st := MustOpenStore(t)
	var buf bytes.Buffer
	var announced int64
	n, err := st.BackupSized(func(size int64) (io.Writer, error) {
		announced = size
		return &buf, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != announced || int64(buf.Len()) != n {
		t.Fatalf("announced %d, wrote %d, got %d bytes", announced, n, buf.Len())
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "copy.db")
	if err := os.WriteFile(good, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := VerifyFile(good); err != nil {
		t.Errorf("VerifyFile of a good copy: %v", err)
	}
	for name, data := range map[string][]byte{
		"truncated.db": buf.Bytes()[:buf.Len()/2],
		"garbage.db":   bytes.Repeat([]byte("x"), 8192),
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o600)
		if err := VerifyFile(p); err == nil {
			t.Errorf("VerifyFile(%s): no error", name)
		}
	}
	missing := filepath.Join(dir, "missing.db")
	if err := VerifyFile(missing); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("VerifyFile of a missing file: %v", err)
	}
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Errorf("VerifyFile created %s", missing)
	}
	// The live file is locked by st.
	if err := VerifyFile(st.Path); err == nil {
		t.Error("VerifyFile of a file open for writing: no error")
	}
}
