package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/testenv"
)

// TestServeEndToEnd runs the whole binary's wiring on port 0 against the
// embedded simulator: pools fill, a VM is checked out, queried and returned.
func TestServeEndToEnd(t *testing.T) {
	testenv.SkipIfShort(t, "starts the simulator")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vmpooler.toml")
	cfg := `
[config]
listen = "127.0.0.1:0"
database = "` + filepath.Join(dir, "vmpooler.db") + `"
domain = "example.com"
check_loop_delay = 1
log_level = "warn"

[[pools]]
name = "debian-12"
alias = "debian"
template = "templates/debian-12"
folder = "vmpooler/debian-12"
size = 2

[providers.vsphere]
simulator = true
boot_delay = 0.1
datacenter = "DC0"
`
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *daemon, 1)
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, []string{"-config", cfgPath}, io.Discard, ready) }()
	var addr string
	select {
	case d := <-ready:
		addr = d.addr
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("pooler did not start")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if fi, err := os.Stat(filepath.Join(dir, "vmpooler.db")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("database file mode: %v %v", fi.Mode(), err)
		}
	}()
	base := "http://" + addr

	// Wait (bounded) until the pool is full.
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st struct {
			Pools map[string]struct{ Ready int } `json:"pools"`
		}
		getJSON(t, base+"/api/v1/status", &st)
		if st.Pools["debian-12"].Ready >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool did not fill: %+v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}

	resp, err := http.Post(base+"/api/v1/vm/debian", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	var co map[string]any
	json.NewDecoder(resp.Body).Decode(&co)
	resp.Body.Close()
	if resp.StatusCode != 200 || co["ok"] != true {
		t.Fatalf("checkout: %d %v", resp.StatusCode, co)
	}
	host, _ := co["debian"].(map[string]any)["hostname"].(string)
	if len(host) != 15 {
		t.Fatalf("hostname %q", host)
	}
	var vm map[string]any
	getJSON(t, base+"/api/v1/vm/"+host+".example.com", &vm)
	// Keyed by the short hostname, as upstream's hostname_shorten.
	if v, _ := vm[host].(map[string]any); v == nil || v["state"] != "running" {
		t.Errorf("GET /vm/<fqdn> = %v, want state running under %q", vm, host)
	}
	req, _ := http.NewRequest(http.MethodDelete, base+"/api/v1/vm/"+host, nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"ok": true`) {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
