package httpapi

import (
	"strings"
	"testing"
)

type adminTestConfig struct {
	Global struct {
		Listen   string `toml:"listen"`
		Database string `toml:"database"`
		SiteName string `toml:"site_name"`
	} `toml:"config"`
	Auth struct {
		File     string `toml:"file"`
		Password string `toml:"password"`
	} `toml:"auth"`
}

// TestAdminRole: with [auth] admins set only admins' tokens may call the
// operator routes, and only they see paths and the listen address in
// /config; secrets are masked for everyone.
func TestAdminRole(t *testing.T) {
	var rc adminTestConfig
	rc.Global.Listen, rc.Global.Database, rc.Global.SiteName = "127.0.0.1:4567", "/var/lib/vmpooler/vmpooler.db", "lab"
	rc.Auth.File, rc.Auth.Password = "/etc/vmpooler/htpasswd", "hunter2"
	e := mustEnv(t, envOptions{auth: true, experimental: true, admins: []string{"alice"}, redacted: rc})
	alice, bob := e.token("alice"), e.token("bob")
	for _, rt := range []struct{ method, path, body string }{
		{"POST", "/api/v1/config/poolsize", `{"debian-7-i386":"3"}`},
		{"DELETE", "/api/v1/config/poolsize/debian-7-i386", ""},
		{"POST", "/api/v1/config/pooltemplate", `{"debian-7-i386":"templates/other"}`},
		{"DELETE", "/api/v1/config/pooltemplate/debian-7-i386", ""},
		{"POST", "/api/v1/config/clonetarget", `{"debian-7-i386":"cluster2"}`},
		{"DELETE", "/api/v1/config/clonetarget/debian-7-i386", ""},
		{"POST", "/api/v1/poolreset", `{"debian-7-i386":"1"}`},
	} {
		r := e.do(req{method: rt.method, path: rt.path, body: rt.body, token: bob})
		if r.status != 403 || r.body["ok"] != false || !strings.Contains(r.raw, "administrators") {
			t.Errorf("bob %s %s: %d %s", rt.method, rt.path, r.status, r.raw)
		}
		if r := e.do(req{method: rt.method, path: rt.path, body: rt.body}); r.status != 401 {
			t.Errorf("no token %s %s: %d %s", rt.method, rt.path, r.status, r.raw)
		}
		if r := e.do(req{method: rt.method, path: rt.path, body: rt.body, token: alice}); r.status != 200 && r.status != 201 {
			t.Errorf("alice %s %s: %d %s", rt.method, rt.path, r.status, r.raw)
		}
	}
	for _, path := range []string{"/api/v1/config", "/api/v1/full_config"} {
		for who, tok := range map[string]string{"bob": bob, "anonymous": ""} {
			r := e.do(req{method: "GET", path: path, token: tok})
			if r.status != 200 || strings.Contains(r.raw, "4567") || strings.Contains(r.raw, "vmpooler.db") || strings.Contains(r.raw, "htpasswd") || !strings.Contains(r.raw, `"site_name": "lab"`) {
				t.Errorf("%s GET %s: %d %s", who, path, r.status, r.raw)
			}
		}
		r := e.do(req{method: "GET", path: path, token: alice})
		if !strings.Contains(r.raw, `"listen": "127.0.0.1:4567"`) || !strings.Contains(r.raw, "/etc/vmpooler/htpasswd") || !strings.Contains(r.raw, "vmpooler.db") {
			t.Errorf("alice GET %s: %s", path, r.raw)
		}
		for _, tok := range []string{alice, bob} {
			if r := e.do(req{method: "GET", path: path, token: tok}); strings.Contains(r.raw, "hunter2") {
				t.Errorf("GET %s shows a secret: %s", path, r.raw)
			}
		}
	}
}

// TestAdminsUnset: without [auth] admins any token may change pools and
// /config shows everything but secrets, as before.
func TestAdminsUnset(t *testing.T) {
	var rc adminTestConfig
	rc.Global.Listen = "127.0.0.1:4567"
	e := mustEnv(t, envOptions{auth: true, experimental: true, redacted: rc})
	if r := e.do(req{method: "POST", path: "/api/v1/config/poolsize", body: `{"debian-7-i386":"3"}`, token: e.token("bob")}); r.status != 201 {
		t.Errorf("bob: %d %s", r.status, r.raw)
	}
	if r := e.do(req{method: "GET", path: "/api/v1/config"}); !strings.Contains(r.raw, "127.0.0.1:4567") {
		t.Errorf("GET /config: %s", r.raw)
	}
}
