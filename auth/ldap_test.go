package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/go-ldap/ldap/v3"
	"github.com/hashicorp/go-hclog"
	"github.com/jimlambrt/gldap"
	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/internal/nettest"
)

// fakeDir is an in-process LDAP server (gldap) with users by DN. It
// records every bind DN and search filter it receives.
type fakeDir struct {
	srv  *gldap.Server
	port int

	mu      sync.Mutex
	users   map[string]string            // DN -> password
	attrs   map[string]map[string]string // DN -> attribute (lower case) -> value
	binds   []string
	filters []string
}

// startFakeDir starts the server; tlsCfg makes it ldaps.
func startFakeDir(t *testing.T, tlsCfg *tls.Config) *fakeDir {
	t.Helper()
	d := &fakeDir{users: map[string]string{}, attrs: map[string]map[string]string{}}
	var err error
	d.srv, err = gldap.NewServer(gldap.WithLogger(hclog.NewNullLogger()))
	if err != nil {
		t.Fatal(err)
	}
	mux, _ := gldap.NewMux()
	mux.Bind(d.bind)
	mux.Search(d.search)
	d.srv.Router(mux)
	d.port = nettest.ClosedPort(t)
	var opts []gldap.Option
	if tlsCfg != nil {
		opts = append(opts, gldap.WithTLSConfig(tlsCfg))
	}
	go d.srv.Run("127.0.0.1:"+strconv.Itoa(d.port), opts...)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(d.port))
		if err == nil {
			c.Close()
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("gldap did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Cleanup(func() { d.srv.Stop() })
	return d
}

func (d *fakeDir) add(dn, password string, attrs map[string]string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[dn] = password
	d.attrs[dn] = attrs
}

func (d *fakeDir) bind(w *gldap.ResponseWriter, r *gldap.Request) {
	resp := r.NewBindResponse(gldap.WithResponseCode(gldap.ResultInvalidCredentials))
	defer w.Write(resp)
	m, err := r.GetSimpleBindMessage()
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.binds = append(d.binds, m.UserName)
	if m.Password == "" {
		resp.SetResultCode(gldap.ResultSuccess) // an unauthenticated bind, as real servers allow
		return
	}
	if pw, ok := d.users[m.UserName]; ok && pw == string(m.Password) {
		resp.SetResultCode(gldap.ResultSuccess)
	}
}

// search matches filters of the form (attr=value) or (|(a=v)(b=v)) by
// comparing each clause with the escaped form of every entry's values.
func (d *fakeDir) search(w *gldap.ResponseWriter, r *gldap.Request) {
	resp := r.NewSearchDoneResponse(gldap.WithResponseCode(gldap.ResultSuccess))
	defer w.Write(resp)
	m, err := r.GetSearchMessage()
	if err != nil {
		resp.SetResultCode(gldap.ResultOperationsError)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.filters = append(d.filters, m.Filter)
	for dn, attrs := range d.attrs {
		if !strings.HasSuffix(strings.ToLower(dn), strings.ToLower(m.BaseDN)) {
			continue
		}
		for a, v := range attrs {
			if strings.Contains(strings.ToLower(m.Filter), "("+a+"="+strings.ToLower(ldap.EscapeFilter(v))+")") {
				w.Write(r.NewSearchResponseEntry(dn))
				break
			}
		}
	}
}

func (d *fakeDir) seen() (binds, filters []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.binds...), append([]string(nil), d.filters...)
}

// ldapCfg parses an [auth] section.
func ldapCfg(t *testing.T, text string) *Config {
	t.Helper()
	var f struct {
		Auth *Config `toml:"auth"`
	}
	if _, err := toml.Decode(text, &f); err != nil {
		t.Fatal(err)
	}
	return f.Auth
}

func newLDAPAuth(t *testing.T, text string) *Auth {
	t.Helper()
	a, err := New(ldapCfg(t, text), nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// plainLDAP is an [auth] section for an LDAP server on 127.0.0.1:port
// without TLS; extra adds to [auth.ldap].
func plainLDAP(port int, extra string) string {
	return `
[auth]
provider = "ldap"
[auth.ldap]
host = "127.0.0.1"
port = ` + strconv.Itoa(port) + `
encryption = "plain"
insecure = true
` + extra
}

// wantOK reports a login (or another call) that failed.
func wantOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if errs.ErrorCode(err) != code {
		t.Errorf("%s: got %v, want code %q", what, err, code)
	}
}

func TestLDAPDirectBind(t *testing.T) {
	d := startFakeDir(t, nil)
	d.add("uid=alice,ou=people,dc=example,dc=org", "wonderland", nil)
	d.add("cn=bob,ou=staff,dc=example,dc=org", "builder", nil)
	d.add(`uid=a\,b,ou=people,dc=example,dc=org`, "comma", nil)
	a := newLDAPAuth(t, plainLDAP(d.port, `
base = ["ou=people,dc=example,dc=org", "ou=staff,dc=example,dc=org"]
user_object = ["uid", "cn"]
`))
	wantOK(t, "alice", a.Login("alice", "wonderland"))
	wantOK(t, "bob", a.Login("bob", "builder")) // last base, last object
	wantCode(t, "wrong password", a.Login("alice", "nope"), errs.EUNAUTHORIZED)
	wantCode(t, "unknown user", a.Login("mallory", "x"), errs.EUNAUTHORIZED)
	binds, _ := d.seen()
	n := len(binds)
	wantCode(t, "empty password", a.Login("alice", ""), errs.EUNAUTHORIZED)
	wantCode(t, "empty user", a.Login("", "x"), errs.EUNAUTHORIZED)
	if binds, _ = d.seen(); len(binds) != n {
		t.Errorf("an empty password or user reached the server: %q", binds[n:])
	}
	// A comma in the name is escaped, so it cannot add a DN component.
	wantOK(t, "a,b", a.Login("a,b", "comma"))
	wantCode(t, "DN injection", a.Login("alice,ou=people,dc=example,dc=org", "wonderland"), errs.EUNAUTHORIZED)
	binds, _ = d.seen()
	for _, b := range binds {
		if strings.HasPrefix(b, "uid=alice,ou=people,dc=example,dc=org,") {
			t.Errorf("unescaped DN sent: %q", b)
		}
	}
}

func TestLDAPServiceAccountSearch(t *testing.T) {
	d := startFakeDir(t, nil)
	d.add("cn=svc,dc=example,dc=org", "svcpass", nil)
	d.add("CN=Alice Liddell,OU=Users,DC=example,DC=org", "wonderland", map[string]string{"samaccountname": "alice"})
	d.add("CN=Twin One,OU=Users,DC=example,DC=org", "one", map[string]string{"samaccountname": "twin"})
	d.add("CN=Twin Two,OU=Users,DC=example,DC=org", "two", map[string]string{"samaccountname": "twin"})
	t.Setenv("TEST_LDAP_SVC_PASSWORD", "svcpass")
	sa := `
base = "OU=Users,DC=example,DC=org"
user_object = "sAMAccountName"
[auth.ldap.service_account]
user_dn = "cn=svc,dc=example,dc=org"
`
	a := newLDAPAuth(t, plainLDAP(d.port, sa+`password_env = "TEST_LDAP_SVC_PASSWORD"`+"\n"))
	wantOK(t, "alice", a.Login("alice", "wonderland"))
	wantCode(t, "wrong password", a.Login("alice", "nope"), errs.EUNAUTHORIZED)
	wantCode(t, "unknown user", a.Login("mallory", "x"), errs.EUNAUTHORIZED)
	wantCode(t, "two entries", a.Login("twin", "one"), errs.EUNAUTHORIZED)
	wantCode(t, "injection", a.Login("*)(sAMAccountName=*", "wonderland"), errs.EUNAUTHORIZED)
	wantCode(t, "wildcard", a.Login("*", "wonderland"), errs.EUNAUTHORIZED)
	_, filters := d.seen()
	if len(filters) == 0 || filters[0] != "(sAMAccountName=alice)" {
		t.Errorf("filters %q", filters)
	}
	found := false
	for _, f := range filters {
		if strings.Contains(f, `\2a\29\28sAMAccountName=\2a`) {
			found = true
		}
		if strings.Contains(f, "=*") {
			t.Errorf("unescaped wildcard in filter %q", f)
		}
	}
	if !found {
		t.Errorf("the injection attempt was not sent escaped: %q", filters)
	}

	// A service account the server refuses is the operator's problem: 503.
	b := newLDAPAuth(t, plainLDAP(d.port, sa+`password = "wrong"`+"\n"))
	wantCode(t, "service account refused", b.Login("alice", "wonderland"), errs.EUNAVAILABLE)
}

func TestLDAPUnavailable(t *testing.T) {
	d := startFakeDir(t, nil)
	d.add("uid=alice,dc=example,dc=org", "wonderland", nil)
	cfg := func(port int) string {
		return plainLDAP(port, `
base = "dc=example,dc=org"
user_object = "uid"
timeout = 1
`)
	}
	a := newLDAPAuth(t, cfg(d.port))
	if err := a.Login("alice", "wonderland"); err != nil {
		t.Fatal(err)
	}
	d.srv.Stop() // the server goes away
	err := a.Login("alice", "wonderland")
	wantCode(t, "server gone", err, errs.EUNAVAILABLE)
	if !strings.Contains(errs.ErrorMessage(err), "cannot be reached") {
		t.Errorf("message %q", errs.ErrorMessage(err))
	}

	// A server that accepts and never answers: the deadline ends the login.
	b := newLDAPAuth(t, cfg(nettest.Accepting(t, nil).Port))
	start := time.Now()
	wantCode(t, "silent server", b.Login("alice", "wonderland"), errs.EUNAVAILABLE)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("login took %v with timeout = 1", d)
	}
}

func TestLDAPSimpleTLS(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	d := startFakeDir(t, ca.serverTLS)
	d.add("uid=alice,dc=example,dc=org", "wonderland", nil)
	base := `
[auth]
provider = "ldap"
[auth.ldap]
host = "localhost"
port = ` + strconv.Itoa(d.port) + `
base = "dc=example,dc=org"
user_object = "uid"
encryption = "simple_tls"
timeout = 2
`
	a := newLDAPAuth(t, base+"ca_file = \""+ca.caFile+"\"\n")
	wantOK(t, "with the test CA", a.Login("alice", "wonderland"))
	wantCode(t, "wrong password over TLS", a.Login("alice", "x"), errs.EUNAUTHORIZED)
	// Without the CA the certificate is not trusted: no password is sent.
	b := newLDAPAuth(t, base)
	wantCode(t, "untrusted certificate", b.Login("alice", "wonderland"), errs.EUNAVAILABLE)
}

func TestLDAPConfigErrors(t *testing.T) {
	// Each case breaks a valid section, ok, in one way.
	const ldap = "[auth]\nprovider = \"ldap\"\n[auth.ldap]\n"
	const ok = ldap + "host = \"h\"\nbase = \"dc=x\"\nuser_object = \"uid\"\n"
	const sa = ok + "[auth.ldap.service_account]\nuser_dn = \"cn=svc\"\n"
	for name, text := range map[string]string{
		"no section":    "[auth]\nprovider = \"ldap\"\n",
		"no host":       ldap + "base = \"dc=x\"\nuser_object = \"uid\"\n",
		"plain":         ok + "encryption = \"plain\"\n",
		"bad enc":       ok + "encryption = \"tls\"\n",
		"bad object":    ldap + "host = \"h\"\nbase = \"dc=x\"\nuser_object = \"uid=*\"\n",
		"bad base":      ldap + "host = \"h\"\nbase = \"not a dn\"\nuser_object = \"uid\"\n",
		"missing ca":    ok + "ca_file = \"/nonexistent\"\n",
		"sa no pass":    sa,
		"sa env unset":  sa + "password_env = \"VMPOOLER_TEST_UNSET_VARIABLE\"\n",
		"negative ttl":  "[auth]\nprovider = \"dummy\"\ntoken_ttl = -1\n",
		"bad base list": ldap + "host = \"h\"\nbase = [1]\nuser_object = \"uid\"\n",
	} {
		var f struct {
			Auth *Config `toml:"auth"`
		}
		if _, err := toml.Decode(text, &f); err != nil {
			continue // refused while parsing: fine
		}
		if _, err := New(f.Auth, nil, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%s: accepted", name)
		} else if strings.Contains(err.Error(), "svcpass") {
			t.Errorf("%s: error shows a password: %v", name, err)
		}
	}
}

// testCA is a throw-away CA and a server certificate for localhost and
// 127.0.0.1, written as PEM files.
type testCA struct {
	caFile, certFile, keyFile string
	serverTLS                 *tls.Config
}

func newTestCA(t *testing.T, dir string) testCA {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vmpooler test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	ca := testCA{caFile: filepath.Join(dir, "ca.pem"), certFile: filepath.Join(dir, "server.pem"), keyFile: filepath.Join(dir, "server.key")}
	write := func(path, typ string, b []byte) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(ca.caFile, "CERTIFICATE", caDER)
	write(ca.certFile, "CERTIFICATE", der)
	write(ca.keyFile, "PRIVATE KEY", keyDER)
	pair, err := tls.LoadX509KeyPair(ca.certFile, ca.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ca.serverTLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	return ca
}
