package auth

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/internal/tomlx"
)

// ProviderLDAP checks users by binding to an LDAP or Active Directory server.
const ProviderLDAP = "ldap"

// EUNAVAILABLE is the code of an error that says the user directory cannot
// be reached or refused the service account (httpapi: 503).

// Encryption values of [auth.ldap] encryption.
const (
	EncStartTLS  = "start_tls"  // plain connection upgraded with StartTLS (default)
	EncSimpleTLS = "simple_tls" // ldaps: TLS from the first byte
	EncPlain     = "plain"      // no TLS: only with insecure = true
)

// DefaultLDAPTimeout bounds one login (connect, TLS, binds and search).
const DefaultLDAPTimeout = 10 * time.Second

// maxUserLen bounds a user name sent to the directory.
const maxUserLen = 256

// StringList is a TOML string or array of strings (upstream accepts either
// for base and user_object).
type StringList = tomlx.StringList

// LDAPConfig is [auth.ldap], with upstream's key names.
type LDAPConfig struct {
	Host       string     `toml:"host"`
	Port       int        `toml:"port"`        // default 389 (636 with simple_tls)
	Base       StringList `toml:"base"`        // tried in order
	UserObject StringList `toml:"user_object"` // e.g. uid, sAMAccountName
	Encryption string     `toml:"encryption"`  // start_tls (default), simple_tls, plain
	// Insecure must be true for encryption = "plain": passwords then cross
	// the network in clear text.
	Insecure bool   `toml:"insecure"`
	CAFile   string `toml:"ca_file"` // PEM roots for the server's certificate; default the system's
	// Timeout bounds a whole login, in seconds (default 10).
	Timeout        int                 `toml:"timeout"`
	ServiceAccount *LDAPServiceAccount `toml:"service_account"`
}

// LDAPServiceAccount is [auth.ldap.service_account]: with it, logins search
// for the user's DN first (upstream's service_account_hash, bind_as).
type LDAPServiceAccount struct {
	UserDN   string `toml:"user_dn"`
	Password string `toml:"password"`
	// PasswordEnv names an environment variable holding the password, so
	// that it need not be in the file. It wins over Password when set.
	PasswordEnv string `toml:"password_env"`
}

// ldapAuth is a checked LDAPConfig.
type ldapAuth struct {
	addr      string // host:port
	host      string
	bases     []string
	objects   []string
	enc       string
	tls       *tls.Config
	timeout   time.Duration
	saDN      string
	saPass    string
	logger    *slog.Logger
	dialer    func(network, addr string, timeout time.Duration) (net.Conn, error)
	errorNote string // what 503 answers say
}

// newLDAP checks cfg and reads ca_file and the service account password.
func newLDAP(cfg *LDAPConfig, logger *slog.Logger) (*ldapAuth, error) {
	if cfg == nil {
		return nil, errors.New("auth: provider \"ldap\" needs an [auth.ldap] section")
	}
	bad := ldapNameProblems(cfg)
	enc, port, problems := ldapTransport(cfg)
	bad = append(bad, problems...)
	a := &ldapAuth{
		addr: net.JoinHostPort(cfg.Host, strconv.Itoa(port)), host: cfg.Host,
		bases: cfg.Base, objects: cfg.UserObject, enc: enc,
		timeout: DefaultLDAPTimeout, logger: logger,
		dialer: net.DialTimeout,
	}
	if cfg.Timeout > 0 {
		a.timeout = time.Duration(cfg.Timeout) * time.Second
	}
	if enc != EncPlain {
		var err error
		if a.tls, err = ldapTLS(cfg); err != nil {
			bad = append(bad, err.Error())
		}
	}
	if sa := cfg.ServiceAccount; sa != nil {
		bad = append(bad, a.serviceAccount(sa)...)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("auth: [auth.ldap]: %s", strings.Join(bad, "; "))
	}
	a.errorNote = fmt.Sprintf("the LDAP server %s cannot be reached; try again later", a.addr)
	mode := "direct bind"
	if a.saDN != "" {
		mode = "service account search"
	}
	logger.Info("auth: LDAP provider", "server", a.addr, "encryption", enc, "bases", len(a.bases), "user_objects", strings.Join(a.objects, ","), "mode", mode)
	return a, nil
}

// ldapNameProblems checks host, base and user_object.
func ldapNameProblems(cfg *LDAPConfig) []string {
	var bad []string
	if cfg.Host == "" {
		bad = append(bad, "host is required")
	}
	if len(cfg.Base) == 0 {
		bad = append(bad, "base is required (a string or a list)")
	}
	if len(cfg.UserObject) == 0 {
		bad = append(bad, "user_object is required (a string or a list, e.g. \"uid\" or \"sAMAccountName\")")
	}
	for _, b := range cfg.Base {
		if _, err := ldap.ParseDN(b); err != nil || b == "" {
			bad = append(bad, fmt.Sprintf("base %q is not a DN", b))
		}
	}
	for _, o := range cfg.UserObject {
		if !validAttr(o) {
			bad = append(bad, fmt.Sprintf("user_object %q is not an attribute name", o))
		}
	}
	if cfg.Timeout < 0 {
		bad = append(bad, "timeout must not be negative")
	}
	return bad
}

// ldapTransport returns the encryption and port in force (defaults: StartTLS
// on 389, 636 for simple_tls) and what is wrong with them.
func ldapTransport(cfg *LDAPConfig) (enc string, port int, bad []string) {
	enc = cfg.Encryption
	if enc == "" {
		enc = EncStartTLS
	}
	switch enc {
	case EncStartTLS, EncSimpleTLS:
	case EncPlain:
		if !cfg.Insecure {
			bad = append(bad, "encryption = \"plain\" sends passwords in clear text; it needs insecure = true")
		}
	default:
		bad = append(bad, fmt.Sprintf("encryption %q: want start_tls, simple_tls or plain", cfg.Encryption))
	}
	port = cfg.Port
	if port == 0 {
		port = 389
		if enc == EncSimpleTLS {
			port = 636
		}
	} else if port < 1 || port > 65535 {
		bad = append(bad, fmt.Sprintf("port %d is out of range", port))
	}
	return enc, port, bad
}

// ldapTLS is the TLS configuration: TLS 1.2 or later, the host's name, and
// ca_file's certificates as roots when given.
func ldapTLS(cfg *LDAPConfig) (*tls.Config, error) {
	t := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
	if cfg.CAFile == "" {
		return t, nil
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		return t, fmt.Errorf("ca_file: %v", err)
	}
	t.RootCAs = x509.NewCertPool()
	if !t.RootCAs.AppendCertsFromPEM(pem) {
		return t, fmt.Errorf("ca_file %s holds no PEM certificate", cfg.CAFile)
	}
	return t, nil
}

// serviceAccount takes the service account's DN and password (from
// password or password_env) and says what is wrong with them.
func (a *ldapAuth) serviceAccount(sa *LDAPServiceAccount) []string {
	var bad []string
	a.saDN, a.saPass = sa.UserDN, sa.Password
	if sa.PasswordEnv != "" {
		a.saPass = os.Getenv(sa.PasswordEnv)
		if a.saPass == "" {
			bad = append(bad, fmt.Sprintf("service_account password_env: environment variable %s is empty or unset", sa.PasswordEnv))
		}
	}
	if _, err := ldap.ParseDN(a.saDN); err != nil || a.saDN == "" {
		bad = append(bad, "service_account user_dn is required and must be a DN")
	}
	if a.saPass == "" && sa.PasswordEnv == "" {
		bad = append(bad, "service_account needs password or password_env")
	}
	return bad
}

// validAttr reports whether s is an attribute description an admin would
// configure: a letter, then letters, digits and hyphens (or an OID).
func validAttr(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		case (c >= '0' && c <= '9') || c == '-' || c == '.':
			if i == 0 && c == '-' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// errLDAPDown is the 503 answer; the cause goes to the log only.
func (a *ldapAuth) down(user string, err error) error {
	a.logger.Error("auth: LDAP server unavailable", "server", a.addr, "user", user, "err", err)
	return errs.Errorf(errs.EUNAVAILABLE, "%s", a.errorNote)
}

// connect dials the server with one deadline for the whole exchange,
// then upgrades the connection as configured.
func (a *ldapAuth) connect(deadline time.Time) (*ldap.Conn, error) {
	raw, err := a.dialer("tcp", a.addr, time.Until(deadline))
	if err != nil {
		return nil, err
	}
	if err := raw.SetDeadline(deadline); err != nil {
		raw.Close()
		return nil, err
	}
	isTLS := false
	if a.enc == EncSimpleTLS {
		tc := tls.Client(raw, a.tls)
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		raw, isTLS = tc, true
	}
	c := ldap.NewConn(raw, isTLS)
	c.Start()
	c.SetTimeout(time.Until(deadline))
	if a.enc == EncStartTLS {
		if err := c.StartTLS(a.tls); err != nil {
			c.Close()
			return nil, fmt.Errorf("StartTLS: %w", err)
		}
	}
	return c, nil
}

// login checks user's password. EUNAUTHORIZED for a wrong password or an
// unknown user (the same message), EUNAVAILABLE when the server cannot be
// reached or answers with anything but success or invalid credentials.
func (a *ldapAuth) login(user, password string) error {
	// An empty password would be an "unauthenticated bind", which servers
	// answer with success: never send one.
	if user == "" || password == "" || len(user) > maxUserLen || strings.ContainsRune(user, 0) {
		return errLogin
	}
	deadline := time.Now().Add(a.timeout)
	c, err := a.connect(deadline)
	if err != nil {
		return a.down(user, err)
	}
	defer c.Close()
	if a.saDN == "" {
		return a.directBind(c, user, password)
	}
	return a.searchBind(c, user, password)
}

// directBind binds as <user_object>=<user>,<base> for each base and
// user_object in turn, as upstream; the first success wins.
func (a *ldapAuth) directBind(c *ldap.Conn, user, password string) error {
	for _, base := range a.bases {
		for _, obj := range a.objects {
			dn := obj + "=" + ldap.EscapeDN(user) + "," + base
			err := c.Bind(dn, password)
			if err == nil {
				return nil
			} else if refused(err) {
				continue
			}
			return a.down(user, err)
		}
	}
	return errLogin
}

// searchBind binds as the service account, looks the user up under each
// base and binds as the one DN found. No DN, or more than one, is refused.
func (a *ldapAuth) searchBind(c *ldap.Conn, user, password string) error {
	if err := c.Bind(a.saDN, a.saPass); err != nil {
		if refused(err) {
			a.logger.Error("auth: the LDAP service account was refused; check [auth.ldap.service_account]", "server", a.addr, "user_dn", a.saDN)
			return errs.Errorf(errs.EUNAVAILABLE, "the LDAP service account cannot log in; tell the administrator")
		}
		return a.down(user, err)
	}
	var filter strings.Builder
	if len(a.objects) > 1 {
		filter.WriteString("(|")
	}
	for _, obj := range a.objects {
		filter.WriteString("(" + obj + "=" + ldap.EscapeFilter(user) + ")")
	}
	if len(a.objects) > 1 {
		filter.WriteString(")")
	}
	var dns []string
	for _, base := range a.bases {
		req := ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			2, int(a.timeout/time.Second), false, filter.String(), []string{"1.1"}, nil)
		res, err := c.Search(req)
		if ldap.IsErrorAnyOf(err, ldap.LDAPResultSizeLimitExceeded) {
			dns = append(dns, "", "") // several: refused below
			break
		} else if ldap.IsErrorAnyOf(err, ldap.LDAPResultNoSuchObject) {
			continue // this base does not exist
		} else if err != nil {
			return a.down(user, err)
		}
		for _, e := range res.Entries {
			dns = append(dns, e.DN)
		}
	}
	switch len(dns) {
	case 0:
		return errLogin
	case 1:
	default:
		a.logger.Warn("auth: LDAP search found several entries for one user; refused", "user", user, "found", len(dns))
		return errLogin
	}
	if err := c.Bind(dns[0], password); err != nil {
		if refused(err) {
			return errLogin
		}
		return a.down(user, err)
	}
	return nil
}

// refused reports whether a bind failed on the credentials (or the DN does
// not exist), rather than on the server or the network.
func refused(err error) bool {
	return ldap.IsErrorAnyOf(err, ldap.LDAPResultInvalidCredentials, ldap.LDAPResultNoSuchObject,
		ldap.LDAPResultInvalidDNSyntax, ldap.LDAPResultInappropriateAuthentication, ldap.LDAPResultUnwillingToPerform)
}
