package httpapi_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/httpapi"
	"github.com/vmpooler/vmpooler/internal/apitest"
	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/internal/testenv"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/vsphere"
)

// TestOndemandEndToEnd runs the API, the manager and the vSphere provider
// on the in-process simulator: an ondemand request is answered 202 while
// the manager clones and boots its VMs, then 200 with their FQDNs; /config
// hides the vSphere password; /metrics shows the VMs.
func TestOndemandEndToEnd(t *testing.T) {
	testenv.SkipIfShort(t, "starts the vCenter simulator")
	// Pools of size 0 and one ondemand clone at a time: govmomi's simulator
	// races between concurrent clones (Datastore.resolve vs
	// Registry.AppendReference), which -race reports.
	cfg := &pool.Config{Domain: "example.com", CheckLoopDelay: 1, OndemandCloneLimit: 1, Pools: []pool.PoolConfig{
		{Name: "debian-12", Alias: pool.Aliases{"debian"}, Template: "templates/debian-12", Folder: "pools/debian-12", Datacenter: "dc1"},
		{Name: "centos-7", Template: "templates/centos-7", Folder: "pools/centos-7", Datacenter: "dc1", Domain: "lab.example"},
	}}
	cfg.Defaults()
	vcfg := vsphere.Config{Simulator: true, Datacenter: "dc1", BootDelay: 0.1, Password: "s3cret-vc-password"}
	prov := simtest.Open(t, vsphere.New(vcfg, cfg.Pools, nil))
	st := storetest.MustOpen(t)
	metrics := httpapi.NewMetrics()
	mgr := pool.NewManager(cfg, st, prov, nil)
	svc := pool.NewService(cfg, st, nil)
	svc.Kick = mgr.Kick
	a, err := auth.New(nil, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	redacted := map[string]any{"config": cfg, "providers": map[string]any{"vsphere": vcfg.Redacted()}}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Redacted: redacted, Metrics: metrics}, svc, a, st, nil))
	defer srv.Close()
	if err := mgr.Open(); err != nil {
		t.Fatal(err)
	}
	defer mgr.Close()

	status, body := apitest.Call(t, "POST", srv.URL+"/api/v3/ondemandvm", `{"debian":"1","centos-7":"2"}`)
	id, _ := body["request_id"].(string)
	if status != http.StatusCreated || id == "" {
		t.Fatalf("POST /ondemandvm: %d %v", status, body)
	}
	status, body = apitest.Call(t, "GET", srv.URL+"/api/v3/ondemandvm/"+id, "")
	if status != http.StatusAccepted || body["ready"] != false {
		t.Fatalf("first GET: %d %v, want 202 not ready", status, body)
	}
	deadline := time.Now().Add(60 * time.Second)
	for status == http.StatusAccepted && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // the simulator boots in real time
		status, body = apitest.Call(t, "GET", srv.URL+"/api/v3/ondemandvm/"+id, "")
	}
	if status != http.StatusOK || body["ready"] != true {
		t.Fatalf("GET after filling: %d %v, want 200 ready", status, body)
	}
	deb := body["debian"].(map[string]any)["hostname"].([]any)
	cen := body["centos-7"].(map[string]any)["hostname"].([]any)
	if len(deb) != 1 || !strings.HasSuffix(deb[0].(string), ".example.com") ||
		len(cen) != 2 || !strings.HasSuffix(cen[0].(string), ".lab.example") {
		t.Fatalf("hostnames debian %v centos %v", deb, cen)
	}
	status, body = apitest.Call(t, "GET", srv.URL+"/api/v1/vm/"+cen[1].(string), "")
	short, _, _ := strings.Cut(cen[1].(string), ".")
	if vm, _ := body[short].(map[string]any); status != 200 || vm["state"] != "running" {
		t.Errorf("GET vm: %d %v", status, body)
	}

	raw := get(t, srv.URL+"/api/v3/config")
	if strings.Contains(raw, "s3cret") || !strings.Contains(raw, `"password": "********"`) {
		t.Errorf("/config shows the vSphere password or does not mask it:\n%s", raw)
	}
	text := get(t, srv.URL+"/metrics")
	for _, line := range []string{`vmpooler_running{pool="centos-7"} 2`, `vmpooler_running{pool="debian-12"} 1`,
		`vmpooler_http_requests_total{code="202",method="GET",route="/api/v3/ondemandvm/:name"}`} {
		if !strings.Contains(text, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
