package httpapi

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/vmpooler/vmpooler/auth"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	b   bytes.Buffer
	all strings.Builder // everything ever written
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all.Write(p)
	return s.b.Write(p)
}

// lines returns the audit lines written so far, decoded, and resets.
func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("audit line not JSON: %s", l)
		}
		out = append(out, m)
	}
	s.b.Reset()
	return out
}

// TestAuditTrail: every state change and failed login writes one audit
// line with the action, target, user, a short token id and the client,
// never the token or a password.
func TestAuditTrail(t *testing.T) {
	var buf syncBuffer
	e := mustEnv(t, envOptions{auth: true, experimental: true, audit: &buf})
	e.addReady("debian-7-i386", "r1", "r2")
	tok := e.token("jdoe")
	r := e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: tok})
	host := hostnames(r, "debian-7-i386").(string)
	steps := []struct {
		req    req
		action string
		want   map[string]any
	}{
		{req{method: "PUT", path: "/api/v1/vm/" + host, body: `{"lifetime":2,"tags":{"project":"x"}}`, token: tok}, "modify", map[string]any{"host": host, "lifetime": 2.0, "tags": "project"}},
		{req{method: "POST", path: "/api/v1/vm/" + host + "/snapshot", token: tok}, "snapshot", map[string]any{"host": host}},
		{req{method: "POST", path: "/api/v1/vm/" + host + "/disk/8", token: tok}, "disk", map[string]any{"host": host, "disk_gb": 8.0}},
		{req{method: "POST", path: "/api/v1/config/poolsize", body: `{"debian-7-i386":"3"}`, token: tok}, "config_override", map[string]any{"pools": "debian-7-i386"}},
		{req{method: "DELETE", path: "/api/v1/vm/" + host, token: tok}, "return", map[string]any{"host": host}},
		{req{method: "GET", path: "/api/v1/token", user: "jdoe", password: "jdoe"}, "login_failed", map[string]any{"user": "jdoe"}},
		{req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: "notavalidtokennotavalidtoken1234"}, "token_refused", nil},
		{req{method: "DELETE", path: "/api/v1/token/" + tok, user: "jdoe", password: "pw"}, "token_delete", map[string]any{"user": "jdoe", "owner": "jdoe"}},
	}
	lines := buf.lines(t)
	if len(lines) != 2 || lines[0]["action"] != "token_create" || lines[1]["action"] != "checkout" || lines[1]["hosts"] != host {
		t.Fatalf("token creation and checkout: got %v", lines)
	}
	for _, st := range steps {
		e.do(st.req)
		lines := buf.lines(t)
		if len(lines) != 1 {
			t.Errorf("%s %s: %d audit lines, want 1: %v", st.req.method, st.req.path, len(lines), lines)
			continue
		}
		l := lines[0]
		if l["msg"] != "audit" || l["action"] != st.action || l["client"] != "127.0.0.1" {
			t.Errorf("%s: got %v", st.action, l)
		}
		for k, v := range st.want {
			if l[k] != v {
				t.Errorf("%s: %s = %v, want %v", st.action, k, l[k], v)
			}
		}
		if st.action != "login_failed" && st.action != "token_refused" && l["token_id"] != auth.TokenID(tok) {
			t.Errorf("%s: token_id = %v, want %s", st.action, l["token_id"], auth.TokenID(tok))
		}
	}
	if strings.Contains(buf.all.String(), tok) || strings.Contains(buf.all.String(), `"pw"`) {
		t.Error("a token reached the audit log")
	}
}

// TestAuditClientAddress: X-Forwarded-For counts only from trusted proxies.
func TestAuditClientAddress(t *testing.T) {
	for _, c := range []struct {
		name    string
		trusted []string
		xff     string
		want    string
	}{
		{"no trusted proxies", nil, "203.0.113.9", "127.0.0.1"},
		{"trusted peer", []string{"127.0.0.1"}, "203.0.113.9", "203.0.113.9"},
		{"trusted prefix, proxies chained", []string{"127.0.0.0/8", "10.0.0.0/8"}, "198.51.100.7, 203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{"untrusted peer", []string{"10.0.0.0/8"}, "203.0.113.9", "127.0.0.1"},
		{"garbage header", []string{"127.0.0.1"}, "not-an-ip", "127.0.0.1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf syncBuffer
			e := mustEnv(t, envOptions{audit: &buf, trusted: c.trusted})
			e.addReady("debian-7-i386", "r1")
			hr, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/vm/debian-7-i386", nil)
			hr.Header.Set("X-Forwarded-For", c.xff)
			res, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			lines := buf.lines(t)
			if len(lines) != 1 || lines[0]["client"] != c.want {
				t.Errorf("got %v, want client %s", lines, c.want)
			}
		})
	}
}
