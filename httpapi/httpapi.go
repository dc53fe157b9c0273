// Package httpapi serves vmpooler's REST API: /api/v1, /api/v2, /api/v3 and
// the unversioned paths (answered as v1) from one set of handlers, where the
// version only changes how hostnames and a few keys are written. Every answer
// is pretty-printed JSON with an "ok" key, errors and unknown routes included.
// It is the only package that imports httprouter.
package httpapi

import (
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

// Config is what the API needs beyond the pool configuration.
type Config struct {
	// SiteName is shown in the /status message when every pool has VMs
	// ("" = upstream's "Battle station fully armed and operational.").
	SiteName string
	// Redacted is the whole configuration with every secret replaced, for
	// GET /config and /full_config. It is written with its TOML key names;
	// keys that name a secret (password, secret, token) are masked again.
	// A func() any is called on each request, so a reload shows at once.
	Redacted any
	// Metrics collects what /metrics serves; nil means a fresh one. Pass
	// the same value as the manager's Observer so clone and boot times
	// and provider errors show up.
	Metrics *Metrics
	// Audit receives the audit trail (audit.go); nil means the logger
	// given to New.
	Audit *slog.Logger
	// TrustedProxies are the peers (addresses or CIDR prefixes) whose
	// X-Forwarded-For names the client in the audit trail.
	TrustedProxies []string
	// DashboardPrivate ([config] dashboard_public = false) makes the
	// dashboard's running list need a token when authentication is on;
	// pool numbers stay public as /status is.
	DashboardPrivate bool
}

// version selects how hostnames and a few keys are written.
type version int

const (
	vNone version = iota // unversioned paths: answered as v1
	v1
	v2
	v3
)

// fqdn reports whether hostnames are written fully qualified (v2 and later),
// without the v1 "domain" key.
func (v version) fqdn() bool { return v >= v2 }

// call is what a handler gets besides the request: the API version and the
// path parameters.
type call struct {
	v  version
	ps httprouter.Params
}

// handler is a route's function; a returned error is written by writeError.
type handler func(w http.ResponseWriter, r *http.Request, c call) error

type server struct {
	cfg     Config
	svc     *pool.Service
	auth    *auth.Auth
	st      *store.Store
	logger  *slog.Logger
	metrics *Metrics
	started time.Time

	auditLog *slog.Logger
	trusted  []netip.Prefix
	summary  chan struct{} // /summary slots (status.go)
	limits   *limiters     // failed logins and request rates (limit.go)
	down     downLog       // causes of 503s for a service that is down (json.go)
}

// New returns the API handler. a may be nil (authentication off); svc.Now
// is the clock. The handler normalises paths (repeated and trailing slashes
// are ignored), recovers from panics with a JSON 500, and answers unknown
// routes and methods with JSON 404 and 405. HEAD is served on every GET
// route as GET without the body; OPTIONS answers with Allow and JSON.
func New(cfg Config, svc *pool.Service, a *auth.Auth, st *store.Store, logger *slog.Logger) http.Handler {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &server{cfg: cfg, svc: svc, auth: a, st: st, logger: logger, metrics: cfg.Metrics,
		summary: make(chan struct{}, summarySlots), limits: newLimiters()}
	if s.metrics == nil {
		s.metrics = NewMetrics()
	}
	s.metrics.bind(svc)
	s.auditLog = cfg.Audit
	if s.auditLog == nil {
		s.auditLog = logger
	}
	var err error
	if s.trusted, err = ParseTrustedProxies(cfg.TrustedProxies); err != nil {
		logger.Error("trusted_proxies ignored", "err", err) // main validates them first
	}
	s.started = s.now()
	r := httprouter.New()
	r.RedirectTrailingSlash, r.RedirectFixedPath = false, false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errs.Errorf(errs.ENOTFOUND, "no such route: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, errs.Errorf(eMethod, "method %s not allowed on %s", r.Method, r.URL.Path))
	})
	r.PanicHandler = s.panicked
	// OPTIONS: httprouter sets Allow; the body is JSON like every answer.
	r.GlobalOPTIONS = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, obj{{"ok", true}, {"allow", strings.Split(w.Header().Get("Allow"), ", ")}})
	})
	for _, m := range []struct {
		prefix string
		v      version
	}{{"", vNone}, {"/api/v1", v1}, {"/api/v2", v2}, {"/api/v3", v3}} {
		for _, rt := range s.routes() {
			h := s.adapt(m.v, m.prefix+rt.path, rt.h)
			r.Handle(rt.method, m.prefix+rt.path, h)
			if rt.method == "GET" { // HEAD is GET without the body (net/http drops it)
				r.Handle("HEAD", m.prefix+rt.path, h)
			}
		}
	}
	s.mountDashboard(r)
	for _, path := range []string{"/metrics", "/prometheus"} {
		r.Handle("GET", path, s.handleMetrics(path))
		r.Handle("HEAD", path, s.handleMetrics(path))
	}
	return s.instrument(s.recoverer(s.limitURI(s.rateLimit(normalisePath(r)))))
}

// MaxURIBytes bounds a request's target (path and query); a longer one is
// 414 before any route parses it.
const MaxURIBytes = 8 << 10

// limitURI answers a request target longer than MaxURIBytes with a JSON 414.
func (s *server) limitURI(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := len(r.RequestURI)
		if n == 0 { // not from a server: measure what the URL holds
			n = len(r.URL.EscapedPath()) + len(r.URL.RawQuery)
		}
		if n > MaxURIBytes {
			s.writeError(w, r, errs.Errorf(eURITooLong, "Request URI too long (at most %d bytes)", MaxURIBytes))
			return
		}
		next.ServeHTTP(w, r)
	})
}

type route struct {
	method, path string
	h            handler
}

// routes is the route table, mounted under every version prefix.
func (s *server) routes() []route {
	return []route{
		{"GET", "/token", s.basic(s.handleTokenList)},
		{"POST", "/token", s.basic(s.handleTokenCreate)},
		{"GET", "/token/:token", s.tokens(s.handleTokenGet)},
		{"DELETE", "/token/:token", s.basic(s.handleTokenDelete)},
		{"GET", "/vm", s.handleVMList},
		{"POST", "/vm", s.countCheckout(s.handleCheckoutBody)},
		{"POST", "/vm/:name", s.countCheckout(s.handleCheckoutPath)},
		{"GET", "/vm/:name", s.handleVMGet},
		{"PUT", "/vm/:name", s.handleVMModify},
		{"DELETE", "/vm/:name", s.handleVMDelete},
		{"GET", "/vm/:name/snapshot", s.handleSnapshotGet},
		{"POST", "/vm/:name/snapshot", s.handleSnapshot},
		{"GET", "/vm/:name/snapshot/:snapshot", s.handleSnapshotGet},
		{"POST", "/vm/:name/snapshot/:snapshot", s.handleRevert},
		{"POST", "/vm/:name/disk/:size", s.handleDisk},
		{"GET", "/status", s.handleStatus},
		{"GET", "/summary", s.handleSummary},
		{"GET", "/summary/:section", s.handleSummary},
		{"GET", "/summary/:section/:key", s.handleSummary},
		{"GET", "/poolstat", s.handlePoolStat},
		{"GET", "/totalrunning", s.handleTotalRunning},
		{"GET", "/healthcheck", s.handleHealthcheck},
		{"GET", "/dashboard/info", s.handleDashboardInfo},
		{"GET", "/dashboard/running", s.handleDashboardRunning},
		{"GET", "/dashboard/history", s.handleDashboardHistory},
		{"POST", "/ondemandvm", s.messages(s.handleOndemandBody)},
		{"POST", "/ondemandvm/:name", s.messages(s.handleOndemandPath)},
		{"GET", "/ondemandvm/:name", s.messages(s.handleOndemandGet)},
		{"DELETE", "/ondemandvm/:name", s.messages(s.handleOndemandDelete)},
		{"GET", "/config", s.handleConfig},
		{"GET", "/full_config", s.handleFullConfig},
		{"POST", "/config/poolsize", s.experimental(s.handlePoolSize)},
		{"DELETE", "/config/poolsize/:pool", s.experimental(s.handlePoolSizeReset)},
		{"POST", "/config/pooltemplate", s.experimental(s.handlePoolTemplate)},
		{"DELETE", "/config/pooltemplate/:pool", s.experimental(s.handlePoolTemplateReset)},
		{"POST", "/config/clonetarget", s.experimental(s.handleCloneTarget)},
		{"DELETE", "/config/clonetarget/:pool", s.experimental(s.handleCloneTargetReset)},
		{"POST", "/poolreset", s.experimental(s.handlePoolReset)},
	}
}

// adapt turns a handler into a route of version v; pattern names the
// route in the HTTP metrics.
func (s *server) adapt(v version, pattern string, h handler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		setRoute(w, pattern)
		if err := h(w, r, call{v: v, ps: ps}); err != nil {
			s.writeError(w, r, err)
		}
	}
}

func (s *server) now() time.Time {
	if s.svc.Now != nil {
		return s.svc.Now()
	}
	return time.Now()
}

// normalisePath makes trailing and repeated slashes optional (beaker posts
// to "//vm/") without redirects, which clients do not follow for POST.
func normalisePath(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.Contains(p, "//") || (len(p) > 1 && strings.HasSuffix(p, "/")) {
			for strings.Contains(p, "//") {
				p = strings.ReplaceAll(p, "//", "/")
			}
			if len(p) > 1 {
				p = strings.TrimSuffix(p, "/")
			}
			r2 := *r
			u := *r.URL
			u.Path, u.RawPath = p, ""
			r2.URL = &u
			r = &r2
		}
		next.ServeHTTP(w, r)
	})
}

// recoverer answers a panic outside the router with a JSON 500 as well.
func (s *server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.panicked(w, r, v)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func (s *server) panicked(w http.ResponseWriter, r *http.Request, v any) {
	if v == http.ErrAbortHandler {
		panic(v)
	}
	s.logger.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v)
	writeJSON(w, http.StatusInternalServerError, obj{{"ok", false}, {"error", "internal error"}})
}
