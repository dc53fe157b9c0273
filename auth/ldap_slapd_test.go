package auth

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/internal/nettest"
)

// slapdBin finds Debian's slapd and slapadd (in /usr/sbin, often not on a
// user's PATH), or skips the test naming the package to install.
func slapdBin(t *testing.T) (slapd, slapadd string) {
	t.Helper()
	find := func(name string) string {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		if p := "/usr/sbin/" + name; fileExists(p) {
			return p
		}
		return ""
	}
	slapd, slapadd = find("slapd"), find("slapadd")
	if slapd == "" || slapadd == "" {
		t.Skip("slapd is not installed: apt-get install slapd ldap-utils (Debian package slapd) to run the OpenLDAP tests")
	}
	if !fileExists("/etc/ldap/schema/inetorgperson.schema") {
		t.Skip("the OpenLDAP schema files are missing (/etc/ldap/schema): reinstall the Debian package slapd")
	}
	return slapd, slapadd
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// slapdServer is a throw-away OpenLDAP server on a loopback port.
type slapdServer struct {
	port int
	ca   testCA
	cmd  *exec.Cmd
}

const slapdLDIF = `dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=staff,dc=example,dc=org
objectClass: organizationalUnit
ou: staff

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
userPassword: wonderland

dn: cn=Bob Builder,ou=staff,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
userPassword: canwefixit

dn: uid=twin,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: twin
cn: Twin One
sn: One
userPassword: twin

dn: cn=Twin Two,ou=staff,dc=example,dc=org
objectClass: inetOrgPerson
uid: twin
cn: Twin Two
sn: Two
userPassword: twin

dn: cn=vmpooler,ou=services,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: vmpooler
userPassword: svcsecret
`

// startSlapd writes a slapd.conf and an mdb database into a temp dir,
// loads the entries above with slapadd and runs slapd in the foreground on
// ldap://127.0.0.1:<port> with a test CA's certificate for StartTLS.
// Anonymous users may only bind; searches need a bound user.
func startSlapd(t *testing.T) *slapdServer {
	t.Helper()
	slapd, slapadd := slapdBin(t)
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile %[2]s
TLSCertificateFile %[3]s
TLSCertificateKeyFile %[4]s
database mdb
maxsize 10485760
suffix "dc=example,dc=org"
rootdn "cn=admin,dc=example,dc=org"
rootpw adminsecret
directory %[1]s/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by users read by anonymous auth
`, dir, ca.caFile, ca.certFile, ca.keyFile)
	confFile := filepath.Join(dir, "slapd.conf")
	ldif := filepath.Join(dir, "data.ldif")
	os.WriteFile(confFile, []byte(conf), 0o600)
	os.WriteFile(ldif, []byte(slapdLDIF), 0o600)
	if out, err := exec.Command(slapadd, "-f", confFile, "-l", ldif).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	s := &slapdServer{port: nettest.ClosedPort(t), ca: ca}
	s.cmd = exec.Command(slapd, "-d", "0", "-f", confFile, "-h", "ldap://127.0.0.1:"+strconv.Itoa(s.port))
	var log strings.Builder
	s.cmd.Stdout, s.cmd.Stderr = &log, &log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("slapd: %v", err)
	}
	t.Cleanup(s.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(s.port))
		if err == nil {
			c.Close()
			return s
		} else if time.Now().After(deadline) {
			s.stop()
			t.Fatalf("slapd did not listen on port %d: %v\n%s", s.port, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills slapd (the server going away) and waits for it.
func (s *slapdServer) stop() {
	if s.cmd.ProcessState == nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
	}
}

func (s *slapdServer) config(extra string) string {
	return `
[auth]
provider = "ldap"
[auth.ldap]
host = "localhost"
port = ` + strconv.Itoa(s.port) + `
timeout = 3
` + extra
}

// slapdLogin is a login attempt and the error code it must get ("" for
// none).
type slapdLogin struct{ what, user, password, code string }

// wantSlapdLogins tries, in order, the logins every configuration of the
// test directory answers alike, then more; then it stops s, and a login
// must find the server gone.
func wantSlapdLogins(t *testing.T, s *slapdServer, a *Auth, more ...slapdLogin) {
	t.Helper()
	logins := append([]slapdLogin{
		{"alice", "alice", "wonderland", ""},
		{"wrong password", "alice", "wrong", errs.EUNAUTHORIZED},
		{"unknown user", "mallory", "wonderland", errs.EUNAUTHORIZED},
		// Unescaped in a search filter, (uid=*)(uid=*) would match every
		// entry; escaped it matches none (and as a bind DN it names no one).
		{"injection", "*)(uid=*", "wonderland", errs.EUNAUTHORIZED},
	}, more...)
	for _, l := range logins {
		if err := a.Login(l.user, l.password); l.code == "" {
			wantOK(t, l.what, err)
		} else {
			wantCode(t, l.what, err, l.code)
		}
	}
	s.stop()
	wantCode(t, "server gone", a.Login("alice", "wonderland"), errs.EUNAVAILABLE)
}

func TestSlapdDirectBind(t *testing.T) {
	s := startSlapd(t)
	a := newLDAPAuth(t, s.config(`
base = ["ou=people,dc=example,dc=org", "ou=staff,dc=example,dc=org"]
user_object = ["uid", "cn"]
encryption = "start_tls"
ca_file = "`+s.ca.caFile+`"
`))
	wantSlapdLogins(t, s, a,
		slapdLogin{"bob", "Bob Builder", "canwefixit", ""}, // second base, second object
		slapdLogin{"empty password", "alice", "", errs.EUNAUTHORIZED},
		slapdLogin{"DN injection", "alice,ou=people,dc=example,dc=org", "wonderland", errs.EUNAUTHORIZED})
}

func TestSlapdServiceAccountSearch(t *testing.T) {
	s := startSlapd(t)
	t.Setenv("TEST_SLAPD_SVC_PASSWORD", "svcsecret")
	a := newLDAPAuth(t, s.config(`
base = "dc=example,dc=org"
user_object = "uid"
encryption = "start_tls"
ca_file = "`+s.ca.caFile+`"
[auth.ldap.service_account]
user_dn = "cn=vmpooler,ou=services,dc=example,dc=org"
password_env = "TEST_SLAPD_SVC_PASSWORD"
`))
	wantSlapdLogins(t, s, a,
		slapdLogin{"bob", "bob", "canwefixit", ""}, // found by uid though its DN is cn=...
		slapdLogin{"two entries", "twin", "twin", errs.EUNAUTHORIZED},
		slapdLogin{"wildcard", "al*", "wonderland", errs.EUNAUTHORIZED})
}

func TestSlapdStartTLS(t *testing.T) {
	s := startSlapd(t)
	cfg := `
base = "ou=people,dc=example,dc=org"
user_object = "uid"
encryption = "start_tls"
`
	good := newLDAPAuth(t, s.config(cfg+`ca_file = "`+s.ca.caFile+`"`+"\n"))
	wantOK(t, "StartTLS with the test CA", good.Login("alice", "wonderland"))
	// The system roots do not know the test CA: the handshake fails before
	// any password is sent, and the answer is 503, not 401.
	untrusted := newLDAPAuth(t, s.config(cfg))
	wantCode(t, "untrusted certificate", untrusted.Login("alice", "wonderland"), errs.EUNAVAILABLE)
	plain := newLDAPAuth(t, s.config(`
base = "ou=people,dc=example,dc=org"
user_object = "uid"
encryption = "plain"
insecure = true
`))
	wantOK(t, "plain", plain.Login("alice", "wonderland"))
}
