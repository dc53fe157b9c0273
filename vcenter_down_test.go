package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/nettest"
	"github.com/vmpooler/vmpooler/internal/testenv"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/vsphere"
)

// The pooler starts while vCenter is down: the API serves at once,
// /status and /healthcheck say vCenter is unreachable and why; when a
// vCenter (the standalone simulator) opens on that port, the pools fill.
func TestStartWhileVCenterIsDown(t *testing.T) {
	testenv.SkipIfShort(t, "starts a vCenter simulator")
	vcAddr := nettest.ClosedAddr(t) // connection refused
	_, cfgPath := tempConfig(t, `
[config]
listen = "127.0.0.1:0"
database = "vmpooler.db"
check_loop_delay = 1

[[pools]]
name = "debian-12"
template = "templates/debian-12"
folder = "vmpooler/debian-12"
size = 2
ready_check = "tools"

[providers.vsphere]
server = "`+vcAddr+`"
username = "user"
password = "pass"
insecure = true
datacenter = "DC0"
`)
	r := startPooler(t, cfgPath)

	var st struct {
		VCenter struct {
			Connected bool   `json:"connected"`
			Error     string `json:"error"`
		} `json:"vcenter"`
		Status struct {
			OK      bool   `json:"ok"`
			Message string `json:"message"`
		} `json:"status"`
	}
	waitFor(t, "vCenter reported unreachable", func() (bool, any) {
		getJSON(t, r.base+"/api/v1/status", &st)
		return !st.VCenter.Connected && strings.Contains(st.VCenter.Error, "connection refused"), st
	})
	if st.Status.OK || !strings.Contains(st.Status.Message, "vCenter unreachable: connection refused") {
		t.Errorf("status = %+v, want not ok with the reason", st.Status)
	}
	resp, err := http.Get(r.base + "/healthcheck")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "vCenter unreachable") {
		t.Errorf("/healthcheck = %d %s, want 503 naming vCenter", resp.StatusCode, body)
	}

	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() {
		served <- vsphere.Serve(ctx, vcAddr, "", "", []pool.PoolConfig{{Name: "debian-12",
			Template: "templates/debian-12", Folder: "vmpooler/debian-12", Datacenter: "DC0"}},
			100*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	defer func() {
		r.stop()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("simulator: %v", err)
		}
	}()
	waitFor(t, "pool filled once vCenter is up", func() (bool, any) {
		got := status(t, r.base)
		return got["debian-12"] == 2, got
	})
	resp, err = http.Get(r.base + "/healthcheck")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthcheck once connected = %d, want 200", resp.StatusCode)
	}
}
