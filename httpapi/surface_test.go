package httpapi

import (
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/store"
)

// deliver does what the manager does for an ondemand request: clones a VM
// of poolName for it and passes its ready check, which hands it over.
func (e *env) deliver(id, poolName, host string) {
	e.tb.Helper()
	if err := e.st.AddPending(store.VM{Hostname: host, Pool: poolName, Template: "templates/" + poolName, RequestID: id}); err != nil {
		e.tb.Fatal(err)
	}
	if err := e.st.MarkCloned(host); err != nil {
		e.tb.Fatal(err)
	}
	if err := e.st.MarkReady(host, "10.0.0.2"); err != nil {
		e.tb.Fatal(err)
	}
}

// TestSurface replays every endpoint added beside the seed's (poolstat,
// totalrunning, healthcheck, ondemand, config, poolreset, disks) under each
// version, with authentication and experimental_features on; one golden
// file per version.
func TestSurface(t *testing.T) {
	for _, v := range []struct{ name, prefix string }{
		{"unversioned", ""}, {"v1", "/api/v1"}, {"v2", "/api/v2"}, {"v3", "/api/v3"},
	} {
		t.Run(v.name, func(t *testing.T) {
			e := mustEnv(t, envOptions{auth: true, experimental: true,
				redacted: map[string]any{"providers": map[string]any{"vsphere": map[string]any{"server": "vc", "password": "hunter2"}}}})
			specVMs(e)
			tok := e.token("jdoe")
			vars := map[string]string{"token": tok}
			fqdn := v.prefix == "/api/v2" || v.prefix == "/api/v3"
			P := v.prefix
			T := func(m, path, body string) req { return req{method: m, path: P + path, body: body, token: "{token}"} }
			R := func(m, path, body string) req { return req{method: m, path: P + path, body: body} }
			steps := []step{
				{req: R("GET", "/poolstat?pool=debian-7-i386,el-6-64", ""), status: 200,
					check: func(t *testing.T, r resp) {
						pools := r.body["pools"].(map[string]any)
						want(t, "pools", len(pools), 2)
						want(t, "centos max", pools["centos-6-x86_64"].(map[string]any)["max"], 2.0)
					}},
				{req: R("GET", "/poolstat", ""), status: 200},
				{req: R("POST", "/vm/debian-7-i386", ""), status: 200},
				{req: R("GET", "/totalrunning", ""), status: 200,
					check: func(t *testing.T, r resp) { want(t, "running", r.body["running"], 1.0) }},
				{req: R("GET", "/status?view=capacity", ""), status: 200},
				{req: R("GET", "/healthcheck", ""), status: 200},
				// ondemand
				{req: R("POST", "/ondemandvm", `{"debian-7-i386":"1"}`), status: 401},
				{req: T("POST", "/ondemandvm", `{"debian-7-i386":"1","debian-7-64":2,"request_id":"req-1"}`), status: 201,
					check: func(t *testing.T, r resp) {
						want(t, "request_id", r.body["request_id"], "req-1")
						if _, ok := r.body["domain"]; ok == fqdn {
							t.Errorf("domain key present = %v in %s", ok, P)
						}
					}},
				{req: T("POST", "/ondemandvm", `{"debian-7-i386":"1","request_id":"req-1"}`), status: 409},
				{req: T("POST", "/ondemandvm/centos-6-x86_64+centos-6-x86_64", ""), status: 201},
				{req: T("POST", "/ondemandvm/debian-7-i386", `ignored`), status: 201},
				{req: T("POST", "/ondemandvm", `{"debian-7-i386":"11"}`), status: 403},
				{req: T("POST", "/ondemandvm", `{"nope":"1","debian-7-i386":"1"}`), status: 404,
					check: func(t *testing.T, r resp) { want(t, "bad_templates", r.body["bad_templates"], []any{"nope"}) }},
				{req: T("POST", "/ondemandvm", `nope`), status: 400},
				{req: T("POST", "/ondemandvm/nope", ""), status: 404},
				{req: R("GET", "/ondemandvm/req-1", ""), status: 202,
					check: func(t *testing.T, r resp) {
						want(t, "debian-7-64", r.body["debian-7-64"], map[string]any{"ready": "0", "pending": "2"})
					}},
				{req: R("GET", "/ondemandvm/req-1", ""), status: 202, before: func() { e.deliver("req-1", "debian-7-i386", "od1") },
					check: func(t *testing.T, r resp) {
						want(t, "debian-7-i386", r.body["debian-7-i386"], map[string]any{"ready": "1", "pending": "0"})
					}},
				{req: R("GET", "/ondemandvm/req-1", ""), status: 200,
					before: func() { e.deliver("req-1", "debian-7-x86_64", "od2"); e.deliver("req-1", "centos-6-x86_64", "od3") },
					check: func(t *testing.T, r resp) {
						want(t, "ready", r.body["ready"], true)
						h := hostnames(r, "debian-7-64").([]any)
						if len(h) != 2 || strings.Contains(h[0].(string), ".") != fqdn {
							t.Errorf("hostnames %v (fqdn %v)", h, fqdn)
						}
					}},
				{req: R("GET", "/vm/od2.company.com", ""), status: 200},
				{req: R("DELETE", "/ondemandvm/req-1", ""), status: 401},
				{req: T("DELETE", "/ondemandvm/req-1", ""), status: 200},
				{req: T("DELETE", "/ondemandvm/req-1", ""), status: 200},
				{req: R("GET", "/ondemandvm/req-1", ""), status: 200},
				{req: R("GET", "/vm/od2", ""), status: 200,
					check: func(t *testing.T, r resp) { want(t, "state", r.body["od2"].(map[string]any)["state"], "completed") }},
				{req: R("GET", "/ondemandvm/nosuchid", ""), status: 404},
				// configuration
				{req: R("GET", "/config", ""), status: 200},
				{req: R("GET", "/full_config", ""), status: 200},
				{req: R("POST", "/config/poolsize", `{"debian-7-i386":"7"}`), status: 401},
				{req: T("POST", "/config/poolsize", `{"debian-7-i386":"7"}`), status: 201},
				{req: T("POST", "/config/poolsize", `{"debian-7-i386":7}`), status: 200},
				{req: T("POST", "/config/poolsize", `{"nope":"1","debian-7-32":"1","debian-7-x86_64":"-1","centos-6-x86_64":"x"}`), status: 400},
				{req: T("POST", "/config/poolsize", `{not json`), status: 400},
				{req: T("POST", "/config/poolsize", ``), status: 400},
				{req: R("GET", "/poolstat?pool=debian-7-i386", ""), status: 200,
					check: func(t *testing.T, r resp) {
						want(t, "max", r.body["pools"].(map[string]any)["debian-7-i386"].(map[string]any)["max"], 7.0)
					}},
				{req: T("DELETE", "/config/poolsize/debian-7-i386", ""), status: 201},
				{req: T("DELETE", "/config/poolsize/debian-7-i386", ""), status: 200},
				{req: T("DELETE", "/config/poolsize/nope", ""), status: 404},
				{req: T("POST", "/config/pooltemplate", `{"debian-7-i386":"templates/debian-7-i386-v2"}`), status: 201},
				{req: T("POST", "/config/pooltemplate", `{"debian-7-i386":"/templates/x","debian-7-x86_64":5}`), status: 400},
				{req: R("GET", "/config", ""), status: 200},
				{req: T("DELETE", "/config/pooltemplate/debian-7-i386", ""), status: 201},
				{req: T("POST", "/config/clonetarget", `{"debian-7-i386":"cluster2"}`), status: 201},
				{req: T("DELETE", "/config/clonetarget/debian-7-i386", ""), status: 201},
				{req: T("POST", "/poolreset", `{"centos-6-x86_64":"1"}`), status: 201,
					check: func(t *testing.T, r resp) { want(t, "ready", e.st.Counts()["centos-6-x86_64"].Ready, 0) }},
				{req: T("POST", "/poolreset", `{"nope":"1"}`), status: 400},
				{req: T("POST", "/poolreset", `[1]`), status: 400},
				// disks
				{req: T("POST", "/vm/o41xtodlvnvu5cw/disk/8", ""), status: 202},
				{req: T("POST", "/vm/o41xtodlvnvu5cw.company.com/disk/0", ""), status: 400},
				{req: T("POST", "/vm/o41xtodlvnvu5cw/disk/2049", ""), status: 400},
				{req: T("PUT", "/vm/o41xtodlvnvu5cw", `{"disk":16}`), status: 202},
				{req: T("PUT", "/vm/o41xtodlvnvu5cw", `{"disk":"lots"}`), status: 400},
				{req: R("PUT", "/vm/o41xtodlvnvu5cw", `{"disk":16}`), status: 401},
				{req: R("GET", "/vm/o41xtodlvnvu5cw", ""), status: 200, before: e.finishJobs,
					check: func(t *testing.T, r resp) {
						want(t, "disk", r.body["o41xtodlvnvu5cw"].(map[string]any)["disk"], []any{"+8gb", "+16gb"})
					}},
			}
			replay(t, e, "surface_"+v.name, steps, vars)
		})
	}
}

// TestExperimentalOff checks that configuration writes answer 405 (JSON)
// when experimental_features is off, before anything else is checked.
func TestExperimentalOff(t *testing.T) {
	e := mustEnv(t, envOptions{auth: true})
	runCases(t, e, []errCase{
		{"poolsize", req{method: "POST", path: "/api/v3/config/poolsize", body: `{"debian-7-i386":"1"}`}, 405, "experimental_features"},
		{"poolsize reset", req{method: "DELETE", path: "/api/v3/config/poolsize/debian-7-i386"}, 405, ""},
		{"pooltemplate", req{method: "POST", path: "/api/v1/config/pooltemplate", body: `{}`}, 405, ""},
		{"pooltemplate reset", req{method: "DELETE", path: "/config/pooltemplate/debian-7-i386"}, 405, ""},
		{"clonetarget", req{method: "POST", path: "/api/v2/config/clonetarget", body: `nope`}, 405, ""},
		{"clonetarget reset", req{method: "DELETE", path: "/api/v2/config/clonetarget/x"}, 405, ""},
		{"poolreset", req{method: "POST", path: "/api/v3/poolreset", body: `{"debian-7-i386":"1"}`}, 405, ""},
		{"config read is open", req{method: "GET", path: "/api/v3/config"}, 200, ""},
	})
}

// TestConfigRedaction checks that no secret of the configuration is shown,
// whatever its place, and that the rest is.
func TestConfigRedaction(t *testing.T) {
	type vs struct {
		Server   string `toml:"server"`
		Username string `toml:"username"`
		Password string `toml:"password"`
	}
	type global struct {
		Listen string `toml:"listen"`
		Skip   string `toml:"-"`
	}
	cfg := struct {
		Global    global                       `toml:"config"`
		Providers map[string]vs                `toml:"providers"`
		LDAP      *map[string]string           `toml:"ldap"`
		Extra     map[string]any               `toml:"extra"`
		Nil       *vs                          `toml:"nil"`
		List      []map[string]string          `toml:"list"`
		Nested    map[string]vs                `toml:"nested"`
		Tokens    map[string]any               `toml:"tokens"`
		Fn        func()                       `toml:"fn"`
		Ch        chan int                     `toml:"ch"`
		Ptr       *global                      `toml:"ptr"`
		Ignored   map[int]string               `toml:"ignored"`
		Bools     map[string]bool              `toml:"bools"`
		Secrets   map[string][]string          `toml:"secrets"`
		Deep      map[string]map[string]string `toml:"deep"`
	}{
		Global:    global{Listen: "127.0.0.1:4567", Skip: "hidden-value"},
		Providers: map[string]vs{"vsphere": {Server: "vc.example", Username: "admin", Password: "s3cret-pw-1"}},
		LDAP:      &map[string]string{"bind_password": "s3cret-pw-2", "host": "ldap.example"},
		Extra:     map[string]any{"api_token": "s3cret-pw-3", "client_secret": "s3cret-pw-4", "ssh_key": "s3cret-pw-5"},
		List:      []map[string]string{{"password": "s3cret-pw-6"}},
		Nested:    map[string]vs{"x": {Password: "s3cret-pw-7"}},
		Tokens:    map[string]any{"a": "s3cret-pw-8"},
		Secrets:   map[string][]string{"a": {"s3cret-pw-9"}},
		Deep:      map[string]map[string]string{"credentials": {"user": "s3cret-pw-10"}},
	}
	e := mustEnv(t, envOptions{redacted: cfg})
	for _, path := range []string{"/api/v3/config", "/api/v1/full_config", "/config"} {
		r := e.do(req{method: "GET", path: path})
		if r.status != 200 {
			t.Fatalf("%s: %d %s", path, r.status, r.raw)
		}
		for _, secret := range []string{"s3cret", "hidden-value"} {
			if strings.Contains(r.raw, secret) {
				t.Errorf("%s shows %q:\n%s", path, secret, r.raw)
			}
		}
		for _, shown := range []string{"vc.example", "ldap.example", "127.0.0.1:4567", `"password": "********"`} {
			if !strings.Contains(r.raw, shown) {
				t.Errorf("%s does not show %q:\n%s", path, shown, r.raw)
			}
		}
	}
}
