package httpapi

import (
	"reflect"

	"github.com/vmpooler/vmpooler/pool"
	"strings"
	"testing"
	"time"
)

// specVMs fills the pools with the hostnames of the seed document, in the
// order the examples hand them out (oldest ready first).
func specVMs(e *env) {
	e.addReady("debian-7-i386", "o41xtodlvnvu5cw", "khirruvwfjlmx3y", "fq6qlpjlsskycq6", "sc0o4xqtodlul5w", "4m4dkhqiufnjmxy")
	e.addReady("debian-7-x86_64", "y91qbrpbfj6d13q", "zb91y9qbrbf6d3q")
	e.addReady("centos-6-x86_64", "pxpmtoonx7fiqg6")
}

// step is one exchange of a replay, with checks beyond the golden file.
type step struct {
	req
	status int
	check  func(t *testing.T, r resp)
	before func()
}

func replay(t *testing.T, e *env, name string, steps []step, vars map[string]string) {
	t.Helper()
	var tr transcript
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		r := s.req
		for k, v := range vars {
			r.path = strings.ReplaceAll(r.path, "{"+k+"}", v)
			r.token = strings.ReplaceAll(r.token, "{"+k+"}", v)
		}
		res := e.do(r)
		if res.status != s.status {
			t.Errorf("%s %s: status %d, want %d\n%s", r.method, r.path, res.status, s.status, res.raw)
		}
		if _, ok := res.body["ok"]; !ok && !strings.HasSuffix(r.path, "/vm") {
			t.Errorf("%s %s: no ok key in %s", r.method, r.path, res.raw)
		}
		if s.check != nil {
			s.check(t, res)
		}
		tr.add(s.req, res)
	}
	golden(t, name, tr.String())
}

func hostnames(r resp, name string) any {
	m, _ := r.body[name].(map[string]any)
	return m["hostname"]
}

func want(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// TestSpecVMExamples replays every VM, status and summary example of
// api-v1.txt as curl sends it, without authentication configured.
func TestSpecVMExamples(t *testing.T) {
	e := mustEnv(t, envOptions{})
	e.clock.Advance(-24 * time.Hour) // boots of 2015-03-10 ...
	e.addReady("debian-7-i386", "old1")
	if _, err := e.svc.Checkout([]pool.Want{{Name: "debian-7-i386", Count: 1}}, pool.Caller{}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(24 * time.Hour) // ... and of 2015-03-11
	specVMs(e)
	e.addReady("debian-7-i386", "spare1", "spare2")
	vars := map[string]string{}
	steps := []step{
		{req: req{method: "GET", path: "/api/v1/vm"}, status: 200},
		{req: req{method: "POST", path: "/api/v1/vm", body: `{"debian-7-i386":"2","debian-7-x86_64":"1"}`}, status: 200,
			check: func(t *testing.T, r resp) {
				want(t, "debian-7-i386", hostnames(r, "debian-7-i386"), []any{"o41xtodlvnvu5cw", "khirruvwfjlmx3y"})
				want(t, "debian-7-x86_64", hostnames(r, "debian-7-x86_64"), "y91qbrpbfj6d13q")
				want(t, "domain", r.body["domain"], "company.com")
			}},
		{req: req{method: "POST", path: "/api/v1/vm/debian-7-i386"}, status: 200,
			check: func(t *testing.T, r resp) { want(t, "hostname", hostnames(r, "debian-7-i386"), "fq6qlpjlsskycq6") }},
		{req: req{method: "POST", path: "/api/v1/vm/debian-7-i386+debian-7-i386+debian-7-x86_64"}, status: 200,
			check: func(t *testing.T, r resp) {
				want(t, "debian-7-i386", hostnames(r, "debian-7-i386"), []any{"sc0o4xqtodlul5w", "4m4dkhqiufnjmxy"})
				want(t, "debian-7-x86_64", hostnames(r, "debian-7-x86_64"), "zb91y9qbrbf6d3q")
			}},
		{req: req{method: "POST", path: "/api/v1/vm/centos-6-x86_64"}, status: 200},
		{req: req{method: "PUT", path: "/api/v1/vm/pxpmtoonx7fiqg6", body: `{"tags":{"department":"engineering","user":"jdoe"}}`}, status: 200},
		{req: req{method: "GET", path: "/api/v1/vm/pxpmtoonx7fiqg6"}, status: 200, before: func() { e.clock.Advance(186 * time.Minute) },
			check: func(t *testing.T, r resp) {
				vm := r.body["pxpmtoonx7fiqg6"].(map[string]any)
				want(t, "template", vm["template"], "centos-6-x86_64")
				want(t, "lifetime", vm["lifetime"], 12.0)
				want(t, "running", vm["running"], 3.1)
				want(t, "remaining", vm["remaining"], 8.9)
				want(t, "state", vm["state"], "running")
				want(t, "tags", vm["tags"], map[string]any{"department": "engineering", "user": "jdoe"})
				want(t, "domain", vm["domain"], "company.com")
			}},
		{req: req{method: "PUT", path: "/api/v1/vm/fq6qlpjlsskycq6", body: `{"lifetime":"2"}`}, status: 200},
		{req: req{method: "PUT", path: "/api/v1/vm/fq6qlpjlsskycq6", body: `{"tags":{"department":"engineering","user":"jdoe"}}`}, status: 200},
		{req: req{method: "POST", path: "/api/v1/vm/fq6qlpjlsskycq6/snapshot", token: "a9znth9dn01t416hrguu56ze37t790bl"}, status: 202,
			check: func(t *testing.T, r resp) {
				vars["snapshot"], _ = r.body["fq6qlpjlsskycq6"].(map[string]any)["snapshot"].(string)
				if len(vars["snapshot"]) != 32 {
					t.Errorf("snapshot name %q, want 32 characters", vars["snapshot"])
				}
			}},
		{req: req{method: "GET", path: "/api/v1/vm/fq6qlpjlsskycq6"}, status: 200, before: func() { e.finishJobs(); e.clock.Advance(5 * time.Minute) },
			check: func(t *testing.T, r resp) {
				vm := r.body["fq6qlpjlsskycq6"].(map[string]any)
				want(t, "snapshots", vm["snapshots"], []any{vars["snapshot"]})
				want(t, "lifetime", vm["lifetime"], 2.0)
			}},
		{req: req{method: "POST", path: "/api/v1/vm/fq6qlpjlsskycq6/snapshot/{snapshot}", token: "a9znth9dn01t416hrguu56ze37t790bl"}, status: 202},
		{req: req{method: "DELETE", path: "/api/v1/vm/fq6qlpjlsskycq6"}, status: 200},
		{req: req{method: "GET", path: "/api/v1/status"}, status: 200,
			check: func(t *testing.T, r resp) {
				want(t, "capacity", r.body["capacity"], map[string]any{"current": 2.0, "total": 10.0, "percent": 20.0})
				q := r.body["queue"].(map[string]any)
				want(t, "queue.ready", q["ready"], 2.0)
				want(t, "queue.running", q["running"], 8.0)
				want(t, "queue.completed", q["completed"], 1.0)
				st := r.body["status"].(map[string]any)
				want(t, "status.ok", st["ok"], false)
				want(t, "status.empty", st["empty"], []any{"debian-7-x86_64", "centos-6-x86_64"})
				want(t, "status.message", st["message"], "Found 2 empty pools.")
				clone := r.body["clone"].(map[string]any)
				want(t, "clone.count", clone["count"], map[string]any{"total": 10.0})
			}},
		{req: req{method: "GET", path: "/api/v1/summary"}, status: 200},
		{req: req{method: "GET", path: "/api/v1/summary?from=2015-03-10&to=2015-03-11"}, status: 200,
			check: func(t *testing.T, r resp) {
				daily := r.body["daily"].([]any)
				if len(daily) != 2 || daily[0].(map[string]any)["date"] != "2015-03-10" || daily[1].(map[string]any)["date"] != "2015-03-11" {
					t.Errorf("daily = %v, want 2015-03-10 then 2015-03-11", daily)
				}
				count := r.body["boot"].(map[string]any)["count"]
				want(t, "boot.count", count, map[string]any{"average": 5.5, "min": 1.0, "max": 10.0, "total": 11.0,
					// per pool, as upstream 2.5.0 answers (reference transcript, /summary)
					"pool": map[string]any{"centos-6-x86_64": map[string]any{"total": 1.0},
						"debian-7-i386": map[string]any{"total": 8.0}, "debian-7-x86_64": map[string]any{"total": 2.0}}})
			}},
	}
	replay(t, e, "spec_vm", steps, vars)
}

// TestSpecTokenExamples replays the token examples, and the examples that
// send a token, with authentication configured.
func TestSpecTokenExamples(t *testing.T) {
	e := mustEnv(t, envOptions{auth: true})
	specVMs(e)
	vars := map[string]string{}
	jdoe := func(m, p string) req { return req{method: m, path: p, user: "jdoe", password: "secret"} }
	steps := []step{
		{req: jdoe("POST", "/api/v1/token"), status: 200,
			check: func(t *testing.T, r resp) { vars["token"], _ = r.body["token"].(string) }},
		{req: jdoe("GET", "/api/v1/token"), status: 200,
			check: func(t *testing.T, r resp) {
				info, _ := r.body[vars["token"]].(map[string]any)
				want(t, "created", info["created"], "2015-03-11 10:08:40 +0000")
			}},
		{req: jdoe("GET", "/api/v1/token/{token}"), status: 200,
			check: func(t *testing.T, r resp) {
				info, _ := r.body[vars["token"]].(map[string]any)
				want(t, "user", info["user"], "jdoe")
				want(t, "timestamp", info["timestamp"], "2015-03-11 10:08:40 +0000")
			}},
		{req: req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: "{token}"}, status: 200},
		{req: req{method: "GET", path: "/api/v1/token/{token}"}, status: 200,
			check: func(t *testing.T, r resp) {
				info, _ := r.body[vars["token"]].(map[string]any)
				want(t, "vms", info["vms"], map[string]any{"running": []any{"o41xtodlvnvu5cw"}})
			}},
		{req: req{method: "GET", path: "/api/v1/vm/o41xtodlvnvu5cw"}, status: 200,
			check: func(t *testing.T, r resp) {
				vm := r.body["o41xtodlvnvu5cw"].(map[string]any)
				want(t, "lifetime", vm["lifetime"], 24.0)
				want(t, "end_time", vm["end_time"], "2015-03-12T10:08:40Z")
			}},
		{req: req{method: "PUT", path: "/api/v1/vm/o41xtodlvnvu5cw", body: `{"lifetime":"2"}`, token: "{token}"}, status: 200},
		{req: req{method: "POST", path: "/api/v1/vm/o41xtodlvnvu5cw/snapshot", token: "{token}"}, status: 202,
			check: func(t *testing.T, r resp) {
				vars["snapshot"], _ = r.body["o41xtodlvnvu5cw"].(map[string]any)["snapshot"].(string)
			}},
		{req: req{method: "POST", path: "/api/v1/vm/o41xtodlvnvu5cw/snapshot/{snapshot}", token: "{token}"}, status: 202,
			before: e.finishJobs},
		{req: req{method: "GET", path: "/api/v1/vm/o41xtodlvnvu5cw"}, status: 200},
		{req: req{method: "DELETE", path: "/api/v1/vm/o41xtodlvnvu5cw", token: "{token}"}, status: 200},
		{req: jdoe("DELETE", "/api/v1/token/{token}"), status: 200},
		{req: req{method: "GET", path: "/api/v1/token/{token}"}, status: 404},
	}
	replay(t, e, "spec_token", steps, vars)
}

// TestVersions checks that the version only changes how hostnames and the
// domain key are written.
func TestVersions(t *testing.T) {
	e := mustEnv(t, envOptions{})
	specVMs(e)
	steps := []step{
		{req: req{method: "GET", path: "/vm"}, status: 200},
		{req: req{method: "POST", path: "/vm/debian-7-i386"}, status: 200,
			check: func(t *testing.T, r resp) { want(t, "domain", r.body["domain"], "company.com") }},
		{req: req{method: "POST", path: "/api/v2/vm/debian-7-i386"}, status: 200,
			check: func(t *testing.T, r resp) {
				want(t, "hostname", hostnames(r, "debian-7-i386"), "khirruvwfjlmx3y.company.com")
				want(t, "domain", r.body["domain"], nil)
			}},
		{req: req{method: "POST", path: "/api/v3/vm", body: `{"debian-7-32":2}`}, status: 200,
			check: func(t *testing.T, r resp) {
				want(t, "hostname", hostnames(r, "debian-7-32"), []any{"fq6qlpjlsskycq6.company.com", "sc0o4xqtodlul5w.company.com"})
			}},
		{req: req{method: "GET", path: "/api/v2/vm/khirruvwfjlmx3y.company.com"}, status: 200,
			check: func(t *testing.T, r resp) {
				// keyed by the short hostname, as upstream's hostname_shorten
				vm, _ := r.body["khirruvwfjlmx3y"].(map[string]any)
				if vm == nil {
					t.Fatalf("not keyed by the short hostname: %v", r.body)
				}
				want(t, "fqdn", vm["fqdn"], "khirruvwfjlmx3y.company.com")
				want(t, "domain", vm["domain"], nil)
			}},
		{req: req{method: "GET", path: "/api/v1/vm/khirruvwfjlmx3y.company.com/"}, status: 200},
		{req: req{method: "DELETE", path: "/api/v3/vm/khirruvwfjlmx3y.company.com"}, status: 200},
		{req: req{method: "DELETE", path: "//vm/o41xtodlvnvu5cw/"}, status: 200},
		{req: req{method: "GET", path: "/status?view=queue"}, status: 200},
		{req: req{method: "GET", path: "/summary/boot/duration"}, status: 200},
		{req: req{method: "GET", path: "/summary/tag"}, status: 200},
	}
	replay(t, e, "versions", steps, nil)
}
