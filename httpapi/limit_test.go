package httpapi

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// basicFrom posts to /token as user from client (via X-Forwarded-For
// through a trusted proxy) and returns the status and Retry-After.
func (e *env) basicFrom(user, password, client string) (int, string, string) {
	e.tb.Helper()
	hr, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/token", nil)
	hr.SetBasicAuth(user, password)
	hr.Header.Set("X-Forwarded-For", client)
	res, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Retry-After"), string(b)
}

// TestLoginThrottle: the 11th failed login in a minute for a user, or from
// an address, is 429 with Retry-After; other users and addresses are not
// affected; the audit names user and address, never the password.
func TestLoginThrottle(t *testing.T) {
	var buf syncBuffer
	e := mustEnv(t, envOptions{auth: true, trusted: []string{"127.0.0.1"}, audit: &buf})
	// The dummy provider refuses a password equal to the name.
	for i := 1; i <= MaxLoginFailures; i++ {
		if st, _, body := e.basicFrom("alice", "alice", "10.0.0.1"); st != 401 {
			t.Fatalf("failure %d: %d %s", i, st, body)
		}
		e.clock.Advance(time.Second)
	}
	st, retry, body := e.basicFrom("alice", "alice", "10.0.0.1")
	if n, _ := strconv.Atoi(retry); st != 429 || n < 1 || n > 60 || !strings.Contains(body, "too many failed logins") {
		t.Fatalf("11th: %d Retry-After %q %s", st, retry, body)
	}
	if st, _, _ := e.basicFrom("alice", "right", "10.0.0.1"); st != 429 {
		t.Errorf("the right password while blocked: %d", st)
	}
	if st, _, _ := e.basicFrom("alice", "right", "10.0.0.3"); st != 429 {
		t.Errorf("alice from another address: %d (the user is blocked)", st)
	}
	if st, _, _ := e.basicFrom("carol", "right", "10.0.0.1"); st != 429 {
		t.Errorf("carol from the blocked address: %d", st)
	}
	if st, _, body := e.basicFrom("bob", "right", "10.0.0.2"); st != 200 {
		t.Errorf("bob from elsewhere: %d %s", st, body)
	}
	e.clock.Advance(LoginWindow)
	if st, _, body := e.basicFrom("alice", "right", "10.0.0.1"); st != 200 {
		t.Errorf("after the window: %d %s", st, body)
	}
	// One address trying many names is blocked too.
	for i := 1; i <= MaxLoginFailures; i++ {
		u := "user" + strconv.Itoa(i)
		if st, _, _ := e.basicFrom(u, u, "10.0.0.9"); st != 401 {
			t.Fatalf("spray %d: %d", i, st)
		}
	}
	if st, _, _ := e.basicFrom("dave", "right", "10.0.0.9"); st != 429 {
		t.Errorf("sprayed address: %d", st)
	}
	if st, _, _ := e.basicFrom("dave", "right", "10.0.0.8"); st != 200 {
		t.Errorf("dave elsewhere: %d", st)
	}
	buf.mu.Lock()
	lines := buf.all.String()
	buf.mu.Unlock()
	if !strings.Contains(lines, `"action":"login_throttled"`) || !strings.Contains(lines, `"client":"10.0.0.1"`) || !strings.Contains(lines, `"user":"alice"`) {
		t.Errorf("audit lacks the throttle with user and address:\n%s", lines)
	}
	if strings.Contains(lines, "right") {
		t.Errorf("audit shows a password:\n%s", lines)
	}
}

func TestRateLimits(t *testing.T) {
	e := mustEnv(t, envOptions{auth: true})
	e.cfg.RateLimitPerIP = 5
	for i := 1; i <= 5; i++ {
		if r := e.do(req{method: "GET", path: "/api/v1/status"}); r.status != 200 {
			t.Fatalf("request %d: %d", i, r.status)
		}
	}
	r := e.do(req{method: "GET", path: "/api/v1/status"})
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.body["ok"] != false {
		t.Errorf("6th: %d %v %s", r.status, r.header, r.raw)
	}
	e.clock.Advance(time.Minute)
	if r := e.do(req{method: "GET", path: "/api/v1/status"}); r.status != 200 {
		t.Errorf("next minute: %d", r.status)
	}
	e.cfg.RateLimitPerIP = 0
	e.cfg.RateLimitPerToken = 2
	a, b := e.token("alice"), e.token("bob")
	for i := 1; i <= 2; i++ {
		e.do(req{method: "GET", path: "/api/v1/status", token: a})
	}
	if r := e.do(req{method: "GET", path: "/api/v1/status", token: a}); r.status != 429 || !strings.Contains(r.raw, "with one token") {
		t.Errorf("3rd with a token: %d %s", r.status, r.raw)
	}
	if r := e.do(req{method: "GET", path: "/api/v1/status", token: b}); r.status != 200 {
		t.Errorf("another token: %d", r.status)
	}
	if r := e.do(req{method: "GET", path: "/api/v1/status"}); r.status != 200 {
		t.Errorf("no token: %d", r.status)
	}
}
