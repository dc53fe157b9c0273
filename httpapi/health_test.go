package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/pool"
)

// /status shows, inside a pool's entry, the foreign VMs of its folder, why
// its new VMs keep failing their ready check, and the provider's notes;
// /metrics counts them. Pools with nothing to say keep upstream's shape.
func TestStatusPoolHealth(t *testing.T) {
	m := NewMetrics()
	e := mustEnv(t, envOptions{metrics: m})
	next := time.Date(2015, 3, 11, 10, 4, 0, 0, time.UTC)
	e.svc.Health = func() map[string]pool.PoolHealth {
		return map[string]pool.PoolHealth{
			"debian-7-i386": {Foreign: []string{"DC0/vm/vmpooler/debian-7-i386/handmade"}},
			"centos-6-x86_64": {ReadyFailure: "failed ready check: tcp 10.0.0.9:22: connection refused after 15m",
				ReadyFailedPasses: 2, Refill: next, Notes: []string{"linked clones requested, but ..."}},
			"debian-7-x86_64": {}, // healthy
			"centos-7.2-x86_64": {CloneFailure: "vsphere: clone x: out of capacity: vCenter is out of capacity: vCenter unreachable or busy: InsufficientStorageSpace",
				CloneFailures: 3, CloneRetry: next},
		}
	}
	r := e.do(req{method: "GET", path: "/api/v1/status"})
	pools := r.body["pools"].(map[string]any)
	deb := pools["debian-7-i386"].(map[string]any)
	f, ok := deb["foreign"].(map[string]any)
	if !ok || f["count"] != float64(1) || f["vms"].([]any)[0] != "DC0/vm/vmpooler/debian-7-i386/handmade" {
		t.Errorf("debian-7-i386 foreign = %v", deb["foreign"])
	}
	cen := pools["centos-6-x86_64"].(map[string]any)
	rf, ok := cen["ready_failure"].(map[string]any)
	if !ok || !strings.Contains(rf["reason"].(string), "connection refused") || rf["failed_passes"] != float64(2) || rf["next_clone"] != "2015-03-11T10:04:00Z" {
		t.Errorf("centos-6-x86_64 ready_failure = %v", cen["ready_failure"])
	}
	if n, ok := cen["notes"].([]any); !ok || len(n) != 1 {
		t.Errorf("centos-6-x86_64 notes = %v", cen["notes"])
	}
	cf, ok := pools["centos-7.2-x86_64"].(map[string]any)["clone_failure"].(map[string]any)
	if !ok || !strings.Contains(cf["reason"].(string), "InsufficientStorageSpace") || cf["failures"] != float64(3) {
		t.Errorf("centos-7.2-x86_64 clone_failure = %v", cf)
	}
	for _, key := range []string{"foreign", "ready_failure", "clone_failure", "notes"} {
		if _, ok := pools["debian-7-x86_64"].(map[string]any)[key]; ok {
			t.Errorf("a healthy pool's entry has %q", key)
		}
	}
	text := e.scrape("/metrics")
	for _, line := range []string{
		`vmpooler_foreign_vms{pool="debian-7-i386"} 1`,
		`vmpooler_foreign_vms{pool="centos-6-x86_64"} 0`,
		`vmpooler_ready_failing_passes{pool="centos-6-x86_64"} 2`,
	} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("/metrics lacks %q", line)
		}
	}
}
