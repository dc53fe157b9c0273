package etcd

import (
	"crypto/tls"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// Defaults of Config.
const (
	DefaultPrefix         = "vmpooler/"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
	// DefaultMaxTxnOps is etcd's own default of --max-txn-ops: the most
	// compares, and the most writes, that one transaction may hold.
	DefaultMaxTxnOps = 128
	// DefaultPort is the port of an endpoint given without one.
	DefaultPort = "2379"
)

// Config says where etcd is and how to talk to it. The zero values of the
// optional fields take the defaults above.
type Config struct {
	Endpoints []string // host:port of each member
	// Prefix is put before every key, so that several poolers (or other
	// users) share one etcd. It ends with "/" (added if missing).
	Prefix string

	// TLS: CAFile checks the server's certificate (system roots when
	// empty); CertFile and KeyFile are the client's certificate. Setting
	// any of them, or TLS, turns TLS on.
	TLS      bool
	CAFile   string
	CertFile string
	KeyFile  string

	Username string // etcd authentication, optional
	Password string

	DialTimeout    time.Duration // how long Open waits to connect
	RequestTimeout time.Duration // bounds every single etcd request
	// MaxTxnOps must not be above the server's --max-txn-ops: a
	// transaction needing more compares or writes fails with EINVALID
	// before it is sent.
	MaxTxnOps int
}

// withDefaults returns cfg with the defaults set and the prefix normalised.
func (cfg Config) withDefaults() Config {
	cfg.Prefix = normalisePrefix(cfg.Prefix)
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = DefaultMaxTxnOps
	}
	return cfg
}

// normalisePrefix trims leading slashes and makes p end with exactly one
// "/"; an empty prefix is DefaultPrefix.
func normalisePrefix(p string) string {
	p = strings.TrimLeft(p, "/")
	p = strings.TrimRight(p, "/")
	if p == "" {
		return DefaultPrefix
	}
	return p + "/"
}

// tlsConfig returns the client's TLS configuration, nil without TLS.
func (cfg Config) tlsConfig() (*tls.Config, error) {
	if !cfg.TLS && cfg.CAFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" {
		return nil, nil
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errs.Errorf(errs.EINVALID, "etcd: a client certificate needs both cert_file and key_file")
	}
	info := transport.TLSInfo{CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, TrustedCAFile: cfg.CAFile}
	c, err := info.ClientConfig()
	if err != nil {
		return nil, errs.Errorf(errs.EINVALID, "etcd TLS: %v", err)
	}
	return c, nil
}

// ParseURL reads an etcd URL: etcd://host1:2379,host2:2379/prefix, or
// etcds:// for TLS checked against the system's roots. The path is the
// key prefix (DefaultPrefix when empty); a port left out is DefaultPort;
// user:password@ before the hosts sets the credentials.
func ParseURL(s string) (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, errs.Errorf(errs.EINVALID, "etcd URL %q: %s", redact(s), fmt.Sprintf(format, args...))
	}
	var cfg Config
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return bad("want etcd://host:port[,host:port...][/prefix] or etcds://...")
	}
	switch strings.ToLower(scheme) {
	case "etcd":
	case "etcds":
		cfg.TLS = true
	default:
		return bad("scheme %q is not etcd:// or etcds://", scheme)
	}
	if strings.ContainsAny(rest, "?#") {
		return bad("query and fragment are not supported (set TLS files in the configuration)")
	}
	hosts, path, _ := strings.Cut(rest, "/")
	if at := strings.LastIndex(hosts, "@"); at >= 0 {
		user, pass, hasPass := strings.Cut(hosts[:at], ":")
		var err error
		if cfg.Username, err = url.PathUnescape(user); err != nil || cfg.Username == "" {
			return bad("bad user name")
		}
		if !hasPass {
			return bad("a user needs a password (user:password@)")
		}
		if cfg.Password, err = url.PathUnescape(pass); err != nil {
			return bad("bad password")
		}
		hosts = hosts[at+1:]
	}
	if hosts == "" {
		return bad("no host")
	}
	for h := range strings.SplitSeq(hosts, ",") {
		ep, err := endpoint(h)
		if err != nil {
			return bad("%v", err)
		}
		cfg.Endpoints = append(cfg.Endpoints, ep)
	}
	p, err := url.PathUnescape(path)
	if err != nil {
		return bad("bad prefix: %v", err)
	}
	cfg.Prefix = normalisePrefix(p)
	return cfg, nil
}

// endpoint checks one host[:port] of a URL and adds the default port.
func endpoint(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("empty host in the list")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		// No port: a name, an IPv4 address or a bracketed IPv6 one.
		host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), DefaultPort
		if strings.Contains(host, ":") && !strings.HasPrefix(h, "[") {
			return "", fmt.Errorf("host %q: put an IPv6 address in brackets, e.g. [::1]:2379", h)
		}
	}
	if host == "" || strings.ContainsAny(host, "[]/@ ") {
		return "", fmt.Errorf("bad host %q", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("host %q: bad port %q", h, port)
	}
	return net.JoinHostPort(host, port), nil
}

// redact hides the password of an etcd URL in an error.
func redact(s string) string {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return s
	}
	hosts, path, hasPath := strings.Cut(rest, "/")
	at := strings.LastIndex(hosts, "@")
	if at < 0 {
		return s
	}
	user, _, _ := strings.Cut(hosts[:at], ":")
	out := scheme + "://" + user + ":xxxxx@" + hosts[at+1:]
	if hasPath {
		out += "/" + path
	}
	return out
}
