package httpapi

import (
	"strconv"
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/internal/nettest"
)

// An LDAP server that cannot be reached is 503 with a clear message, not
// 401 (the password was never checked) and not 500; it does not count as a
// failed login.
func TestLDAPDownIs503(t *testing.T) {
	port := nettest.ClosedPort(t)
	e := mustEnv(t, envOptions{authCfg: &auth.Config{Provider: auth.ProviderLDAP, LDAP: &auth.LDAPConfig{
		Host: "127.0.0.1", Port: port, Base: auth.StringList{"dc=example,dc=org"}, UserObject: auth.StringList{"uid"},
		Encryption: auth.EncPlain, Insecure: true, Timeout: 2,
	}}})
	for i := 0; i < MaxLoginFailures+2; i++ {
		r := e.do(req{method: "POST", path: "/api/v1/token", user: "alice", password: "pw"})
		if r.status != 503 || !strings.Contains(r.raw, "127.0.0.1:"+strconv.Itoa(port)+" cannot be reached") {
			t.Fatalf("attempt %d: %d %s", i+1, r.status, r.raw)
		}
	}
	// An empty password is refused before any connection: 401.
	if r := e.do(req{method: "POST", path: "/api/v1/token", user: "alice", password: ""}); r.status != 401 {
		t.Errorf("empty password: %d %s", r.status, r.raw)
	}
}
