package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// scrape returns the /metrics text.
func (e *env) scrape(path string) string {
	e.tb.Helper()
	res, data := e.roundTrip(http.DefaultClient, e.request("GET", path, nil))
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain") {
		e.tb.Fatalf("GET %s: %d %q", path, res.StatusCode, res.Header.Get("Content-Type"))
	}
	return data
}

func TestMetrics(t *testing.T) {
	m := NewMetrics()
	e := mustEnv(t, envOptions{metrics: m})
	specVMs(e)
	for _, r := range []req{
		{method: "POST", path: "/api/v1/vm/debian-7-i386"},
		{method: "POST", path: "/api/v3/vm", body: `{"debian-7-x86_64":"1"}`},
		{method: "POST", path: "/api/v2/vm/centos-7.2-x86_64"}, // empty
		{method: "POST", path: "/api/v1/vm/nope"},              // invalid
		{method: "POST", path: "/api/v1/vm", body: `{"debian-7-i386":"0"}`},
		{method: "GET", path: "/api/v1/vm/nosuchvm"},
		{method: "GET", path: "/nowhere/at/all"},
	} {
		e.do(r)
	}
	m.CloneFinished("debian-7-i386", 3*time.Second, nil)
	m.CloneFinished("debian-7-i386", time.Second, errors.New("boom"))
	m.VMReady("debian-7-i386", 42*time.Second)
	m.ProviderError("clone", errors.New("boom"))
	m.VMFailed("debian-7-i386", "lifetime")
	m.VMFailed("debian-7-i386", "lifetime")
	text := e.scrape("/metrics")
	for _, line := range []string{
		`vmpooler_checkouts_total{result="success"} 2`,
		`vmpooler_checkouts_total{result="empty"} 1`,
		`vmpooler_checkouts_total{result="invalid"} 2`,
		`vmpooler_ready{pool="debian-7-i386"} 4`,
		`vmpooler_running{pool="debian-7-i386"} 1`,
		`vmpooler_running{pool="debian-7-x86_64"} 1`,
		`vmpooler_pending{pool="centos-6-x86_64"} 0`,
		`vmpooler_pool_size{pool="debian-7-i386"} 5`,
		`vmpooler_clones_total{pool="debian-7-i386",result="success"} 1`,
		`vmpooler_clones_total{pool="debian-7-i386",result="failure"} 1`,
		`vmpooler_clone_duration_seconds_count{pool="debian-7-i386"} 1`,
		`vmpooler_clone_duration_seconds_sum{pool="debian-7-i386"} 3`,
		`vmpooler_boot_duration_seconds_bucket{pool="debian-7-i386",le="60"} 1`,
		`vmpooler_provider_errors_total{op="clone"} 1`,
		`vmpooler_vms_failed_total{cause="lifetime",pool="debian-7-i386"} 2`,
		`vmpooler_http_requests_total{code="200",method="POST",route="/api/v1/vm/:name"} 1`,
		`vmpooler_http_requests_total{code="503",method="POST",route="/api/v2/vm/:name"} 1`,
		`vmpooler_http_requests_total{code="404",method="GET",route="/api/v1/vm/:name"} 1`,
		`vmpooler_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`vmpooler_http_request_duration_seconds_count{method="POST",route="/api/v3/vm"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(text, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if strings.Contains(text, "nosuchvm") || strings.Contains(text, "nowhere") {
		t.Error("/metrics has raw paths in labels")
	}
	if again := e.scrape("/prometheus"); !strings.Contains(again, `route="/metrics"`) {
		t.Error("/prometheus does not count the /metrics scrape")
	}
}
