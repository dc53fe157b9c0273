package httpapi

import (
	"testing"
	"time"
)

// TestTokenTTL: with token_ttl a token shows when it expires, is refused
// with 401 once it has, drops out of its owner's list and is purged.
func TestTokenTTL(t *testing.T) {
	e := mustEnv(t, envOptions{auth: true, tokenTTL: 1})
	e.addReady("debian-7-i386", "t1", "t2")
	r := e.do(req{method: "POST", path: "/api/v1/token", user: "alice", password: "pw"})
	tok, _ := r.body["token"].(string)
	if r.status != 200 || tok == "" {
		t.Fatalf("POST /token: %d %s", r.status, r.raw)
	}
	created := e.clock.Now()
	r = e.do(req{method: "GET", path: "/api/v1/token/" + tok})
	info, _ := r.body[tok].(map[string]any)
	if want := created.Add(24 * time.Hour).Format(rubyTime); info["expires"] != want {
		t.Errorf("GET /token/<t>: expires %v, want %s (%s)", info["expires"], want, r.raw)
	}
	r = e.do(req{method: "GET", path: "/api/v1/token", user: "alice", password: "pw"})
	if info, _ := r.body[tok].(map[string]any); info["expires"] == nil {
		t.Errorf("GET /token: %s", r.raw)
	}
	if r := e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: tok}); r.status != 200 {
		t.Fatalf("checkout before expiry: %d %s", r.status, r.raw)
	}
	e.clock.Advance(24*time.Hour + time.Second)
	r = e.do(req{method: "POST", path: "/api/v1/vm/debian-7-i386", token: tok})
	if r.status != 401 || r.body["error"] != "token expired; ask for a new one with POST /token" {
		t.Errorf("checkout after expiry: %d %s", r.status, r.raw)
	}
	if r := e.do(req{method: "GET", path: "/api/v1/token", user: "alice", password: "pw"}); r.status != 404 {
		t.Errorf("GET /token lists an expired token: %d %s", r.status, r.raw)
	}
	if n, err := e.auth.PurgeExpired(); n != 1 || err != nil {
		t.Errorf("PurgeExpired: %d, %v", n, err)
	}
	if r := e.do(req{method: "GET", path: "/api/v1/token/" + tok}); r.status != 404 {
		t.Errorf("GET /token/<t> after the purge: %d %s", r.status, r.raw)
	}
}

// Without token_ttl nothing expires and no "expires" is shown (upstream).
func TestTokenNoTTL(t *testing.T) {
	e := mustEnv(t, envOptions{auth: true})
	tok := e.token("alice")
	e.clock.Advance(10 * 365 * 24 * time.Hour)
	r := e.do(req{method: "GET", path: "/api/v1/token/" + tok})
	if info, _ := r.body[tok].(map[string]any); info == nil || info["expires"] != nil {
		t.Errorf("GET /token/<t>: %s", r.raw)
	}
	if n, _ := e.auth.PurgeExpired(); n != 0 {
		t.Errorf("purged %d", n)
	}
}
