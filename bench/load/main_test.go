package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/bench/internal/fakepool"
	"github.com/vmpooler/vmpooler/bench/internal/loadgen"
)

func runLoad(t *testing.T, args ...string) (int, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	code, err := run(context.Background(), args, &out, &errOut)
	return code, out.String() + errOut.String(), err
}

func TestLoadEndToEnd(t *testing.T) {
	fp := fakepool.New(map[string]int{"deb": 4, "cent": 4})
	srv := httptest.NewServer(fp)
	defer srv.Close()
	rec := filepath.Join(t.TempDir(), "rec.txt")

	t.Run("checkout text", func(t *testing.T) {
		code, out, err := runLoad(t, "-url", srv.URL, "-clients", "8", "-duration", "1m", "-max", "300",
			"-mode", "checkout", "-pool", "deb,cent", "-record", rec)
		if code != 0 || err != nil {
			t.Fatalf("exit %d, %v\n%s", code, err, out)
		}
		for _, want := range []string{"mode checkout, 8 clients", "300 iterations", "checkout cycles", "p99", "errors: 0"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		code, out, err = runLoad(t, "-check", rec)
		if code != 0 || err != nil || !strings.Contains(out, "ok: no hostname handed out twice") {
			t.Fatalf("check: exit %d, %v\n%s", code, err, out)
		}
	})

	t.Run("status json", func(t *testing.T) {
		code, out, err := runLoad(t, "-url", srv.URL, "-clients", "4", "-duration", "1m", "-max", "100", "-mode", "status", "-json")
		if code != 0 || err != nil {
			t.Fatalf("exit %d, %v\n%s", code, err, out)
		}
		var s loadgen.Summary
		if err := json.Unmarshal([]byte(out), &s); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if s.Requests != 100 || s.Ops["status"].Count != 100 || s.Ops["status"].Status["200"] != 100 || s.Errors != 0 {
			t.Fatalf("summary %+v", s)
		}
	})

	t.Run("vm", func(t *testing.T) {
		code, out, err := runLoad(t, "-url", srv.URL, "-clients", "2", "-max", "10", "-mode", "vm")
		if code != 0 || err != nil || !strings.Contains(out, "10 requests") {
			t.Fatalf("exit %d, %v\n%s", code, err, out)
		}
	})

	t.Run("double hand-out fails the check", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.txt")
		if err := os.WriteFile(bad, []byte("checkout a 1\nreturn a 2\ncheckout a 3\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runLoad(t, "-check", bad)
		if code != 1 || !strings.Contains(out, "DOUBLE HAND-OUT a") {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
}

func TestLoadErrorsByStatus(t *testing.T) {
	fp := fakepool.New(map[string]int{"deb": 2})
	fp.Forget = true
	srv := httptest.NewServer(fp)
	defer srv.Close()
	code, out, _ := runLoad(t, "-url", srv.URL, "-clients", "1", "-max", "2", "-pool", "deb", "-mode", "checkout")
	if code != 1 || !strings.Contains(out, "return 404=2") || !strings.Contains(out, "LOST") {
		t.Fatalf("exit %d\n%s", code, out)
	}
}

func TestLoadRefusesBadUsage(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://10.1.2.3:4567", "-mode", "status"},
		{"-url", "http://example.com", "-mode", "vm"},
		{"-mode", "checkout"}, // no pool
		{"-mode", "status", "-record", "x"},
		{"-clients", "0", "-mode", "status"},
		{"-duration", "0s", "-mode", "status"},
		{"-bogus"},
	} {
		if code, out, _ := runLoad(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2\n%s", args, code, out)
		}
	}
}
