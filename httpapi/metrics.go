package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/julienschmidt/httprouter"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
)

// Metrics holds what GET /metrics serves, in Prometheus text format, from
// its own registry. It implements pool.Observer, so main passes the same
// value to the API (Config.Metrics) and to the manager (Manager.Observer).
//
// Series:
//
//	vmpooler_ready{pool}, vmpooler_running{pool}, vmpooler_pending{pool},
//	vmpooler_completed{pool}               gauges, VMs per state (read at scrape time)
//	vmpooler_pool_size{pool}               gauge, the pool size in force (overrides included)
//	vmpooler_foreign_vms{pool}             gauge, VMs in the pool folder this pooler did not create
//	vmpooler_ready_failing_passes{pool}    gauge, passes in a row whose new VMs failed their ready check
//	vmpooler_checkout_waiters{pool}        gauge, waiting checkouts that ask for the pool
//	vmpooler_checkout_wait_seconds         histogram, how long waiting checkouts waited
//	vmpooler_checkout_wait_timeouts_total  counter, waiting checkouts answered 503 at their deadline
//	vmpooler_checkouts_total{result}       counter, checkout requests: success, empty, invalid
//	vmpooler_clones_total{pool,result}     counter, clone tasks: success, failure
//	vmpooler_clone_duration_seconds{pool}  histogram, successful clone tasks
//	vmpooler_boot_duration_seconds{pool}   histogram, clone start to first ready check passed
//	vmpooler_provider_errors_total{op}     counter, failed vSphere calls by operation
//	vmpooler_vms_failed_total{pool,cause}  counter, VMs the manager took out of their pool (pool.Observer.VMFailed)
//	vmpooler_http_requests_total{method,route,code}      counter
//	vmpooler_http_request_duration_seconds{method,route} histogram
//
// plus the Go runtime and process collectors (go_*, process_*).
type Metrics struct {
	reg          *prometheus.Registry
	checkouts    *prometheus.CounterVec
	clones       *prometheus.CounterVec
	cloneSeconds *prometheus.HistogramVec
	bootSeconds  *prometheus.HistogramVec
	providerErrs *prometheus.CounterVec
	vmsFailed    *prometheus.CounterVec
	waitSeconds  prometheus.Histogram
	waitTimeouts prometheus.Counter
	httpRequests *prometheus.CounterVec
	httpSeconds  *prometheus.HistogramVec

	bindOnce sync.Once
}

var _ pool.Observer = (*Metrics)(nil)

// NewMetrics returns Metrics with every series registered.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		checkouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmpooler_checkouts_total", Help: "Checkout requests by result (success, empty, invalid).",
		}, []string{"result"}),
		clones: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmpooler_clones_total", Help: "Clone tasks by pool and result (success, failure).",
		}, []string{"pool", "result"}),
		cloneSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vmpooler_clone_duration_seconds", Help: "Duration of successful clone tasks.",
			Buckets: []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600},
		}, []string{"pool"}),
		bootSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vmpooler_boot_duration_seconds", Help: "Time from clone start to the first ready check passed.",
			Buckets: []float64{1, 5, 10, 30, 60, 120, 300, 600, 900, 1800},
		}, []string{"pool"}),
		providerErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmpooler_provider_errors_total", Help: "Failed vSphere calls by operation.",
		}, []string{"op"}),
		vmsFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmpooler_vms_failed_total",
			Help: "VMs the manager took out of their pool, by pool and cause (lifetime, ready_ttl, ready_check, hostname_mismatch, clone_failed, clone_timeout, excess, stale, ondemand, vanished).",
		}, []string{"pool", "cause"}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vmpooler_http_requests_total", Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vmpooler_http_request_duration_seconds", Help: "HTTP request durations by method and route pattern.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
	}
	m.waitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "vmpooler_checkout_wait_seconds", Help: "Time waiting checkouts waited, served or not.",
		Buckets: []float64{0.1, 0.5, 1, 5, 10, 30, 60, 120, 300},
	})
	m.waitTimeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "vmpooler_checkout_wait_timeouts_total", Help: "Waiting checkouts answered 503 at their deadline.",
	})
	m.reg.MustRegister(m.waitSeconds, m.waitTimeouts)
	m.reg.MustRegister(m.checkouts, m.clones, m.cloneSeconds, m.bootSeconds, m.providerErrs, m.vmsFailed,
		m.httpRequests, m.httpSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"success", "empty", "invalid"} {
		m.checkouts.WithLabelValues(r) // present at 0 from the start
	}
	return m
}

// CloneFinished counts a clone task and, on success, observes its duration.
func (m *Metrics) CloneFinished(poolName string, d time.Duration, err error) {
	if err != nil {
		m.clones.WithLabelValues(poolName, "failure").Inc()
		return
	}
	m.clones.WithLabelValues(poolName, "success").Inc()
	m.cloneSeconds.WithLabelValues(poolName).Observe(d.Seconds())
}

// VMReady observes a VM's boot time.
func (m *Metrics) VMReady(poolName string, boot time.Duration) {
	m.bootSeconds.WithLabelValues(poolName).Observe(boot.Seconds())
}

// ProviderError counts a failed provider call.
func (m *Metrics) ProviderError(op string, err error) {
	m.providerErrs.WithLabelValues(op).Inc()
}

// VMFailed counts a VM the manager took out of its pool, by cause.
func (m *Metrics) VMFailed(poolName, cause string) {
	m.vmsFailed.WithLabelValues(poolName, cause).Inc()
}

// Registry returns the registry, for tests and for serving it elsewhere.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// bind registers the per-pool gauges of svc (once: the first API built
// with these Metrics owns them).
func (m *Metrics) bind(svc *pool.Service) {
	m.bindOnce.Do(func() { m.reg.MustRegister(&poolCollector{svc: svc}) })
}

// observeWait records how long a waiting checkout waited and whether it
// ended at its deadline without VMs.
func (m *Metrics) observeWait(d time.Duration, timedOut bool) {
	m.waitSeconds.Observe(d.Seconds())
	if timedOut {
		m.waitTimeouts.Inc()
	}
}

// countCheckout records a checkout result: success, empty (503) or invalid
// (unknown pool, bad count or body). Authentication failures are not counted.
func (m *Metrics) countCheckout(err error) {
	switch errs.ErrorCode(err) {
	case "":
		m.checkouts.WithLabelValues("success").Inc()
	case errs.EEMPTY:
		m.checkouts.WithLabelValues("empty").Inc()
	case errs.ENOTFOUND, errs.EINVALID, eTooLarge:
		m.checkouts.WithLabelValues("invalid").Inc()
	}
}

// poolCollector reads the per-pool gauges at scrape time.
type poolCollector struct {
	svc *pool.Service
}

var (
	descReady     = prometheus.NewDesc("vmpooler_ready", "Ready VMs per pool.", []string{"pool"}, nil)
	descRunning   = prometheus.NewDesc("vmpooler_running", "Running (checked out) VMs per pool.", []string{"pool"}, nil)
	descPending   = prometheus.NewDesc("vmpooler_pending", "Pending (cloning or booting) VMs per pool.", []string{"pool"}, nil)
	descCompleted = prometheus.NewDesc("vmpooler_completed", "Completed VMs waiting to be destroyed per pool.", []string{"pool"}, nil)
	descSize      = prometheus.NewDesc("vmpooler_pool_size", "Pool size in force (runtime overrides included).", []string{"pool"}, nil)
	descForeign   = prometheus.NewDesc("vmpooler_foreign_vms", "VMs in the pool folder that this pooler did not create (left alone).", []string{"pool"}, nil)
	descWaiting   = prometheus.NewDesc("vmpooler_checkout_waiters", "Waiting checkouts that ask for the pool.", []string{"pool"}, nil)
	descLeading   = prometheus.NewDesc("vmpooler_leading", "1 when this replica runs the pool manager (several replicas on etcd), else 0.", []string{"replica", "leader"}, nil)
	descReadyFail = prometheus.NewDesc("vmpooler_ready_failing_passes", "Passes in a row in which the pool's new VMs failed their ready check (0 when they pass).", []string{"pool"}, nil)
	descDBUp      = prometheus.NewDesc("vmpooler_database_up", "1 when the database answered the scrape's read (the pool sizes in force), else 0 (etcd unreachable: the counts are the last seen).", nil, nil)
)

// Describe sends the gauges' descriptions.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReady, descRunning, descPending, descCompleted, descSize, descForeign, descReadyFail, descWaiting, descLeading, descDBUp} {
		ch <- d
	}
}

// Collect reads the store's in-memory counts and the pool sizes in force.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	if c.svc == nil || c.svc.Store == nil {
		return
	}
	if c.svc.Replica != nil {
		r := c.svc.Replica()
		v := 0.0
		if r.Leading {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descLeading, prometheus.GaugeValue, v, r.Name, r.Leader)
	}
	counts := c.svc.Store.Counts()
	var health map[string]pool.PoolHealth
	if c.svc.Health != nil {
		health = c.svc.Health()
	}
	waiting := c.svc.Waiters()
	for _, p := range c.svc.Current().Pools {
		n := counts[p.Name]
		h := health[p.Name]
		ch <- prometheus.MustNewConstMetric(descForeign, prometheus.GaugeValue, float64(len(h.Foreign)), p.Name)
		ch <- prometheus.MustNewConstMetric(descReadyFail, prometheus.GaugeValue, float64(h.ReadyFailedPasses), p.Name)
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(waiting[p.Name].Count), p.Name)
		for _, g := range []struct {
			d *prometheus.Desc
			v int
		}{{descReady, n.Ready}, {descRunning, n.Running}, {descPending, n.Pending}, {descCompleted, n.Completed}} {
			ch <- prometheus.MustNewConstMetric(g.d, prometheus.GaugeValue, float64(g.v), p.Name)
		}
	}
	// Without the database the scrape still answers, with what this
	// process knows, and says so.
	pools, err := c.svc.Effective()
	up := 1.0
	if err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descDBUp, prometheus.GaugeValue, up)
	for _, p := range pools {
		ch <- prometheus.MustNewConstMetric(descSize, prometheus.GaugeValue, float64(p.Size), p.Name)
	}
}

// handleMetrics serves the registry in the Prometheus text format.
func (s *server) handleMetrics(pattern string) httprouter.Handle {
	h := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	return func(w http.ResponseWriter, r *http.Request, _ httprouter.Params) {
		setRoute(w, pattern)
		h.ServeHTTP(w, r)
	}
}

// countCheckout wraps a checkout handler to count its result.
func (s *server) countCheckout(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		err := h(w, r, c)
		s.metrics.countCheckout(err)
		return err
	}
}

// recorder remembers the status written and the route that answered.
type recorder struct {
	http.ResponseWriter
	status int
	route  string
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// setRoute names the route answering w, for the HTTP metrics.
func setRoute(w http.ResponseWriter, pattern string) {
	var rec *recorder
	for w != nil {
		if r, ok := w.(*recorder); ok {
			rec = r
			break
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return
		}
		w = u.Unwrap()
	}
	if rec != nil {
		rec.route = pattern
	}
}

// knownMethods bounds the method label.
var knownMethods = map[string]bool{"GET": true, "POST": true, "PUT": true, "DELETE": true, "HEAD": true, "PATCH": true, "OPTIONS": true}

// instrument counts and times every request by method, route pattern (not
// the raw path: "unmatched" for unknown routes) and status code.
func (s *server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			v := recover()
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			if v != nil && errors.Is(asError(v), http.ErrAbortHandler) {
				status = 499 // client gone
			}
			method := r.Method
			if !knownMethods[method] {
				method = "other"
			}
			route := rec.route
			if route == "" {
				route = "unmatched"
			}
			s.metrics.httpRequests.WithLabelValues(method, route, strconv.Itoa(status)).Inc()
			s.metrics.httpSeconds.WithLabelValues(method, route).Observe(time.Since(start).Seconds())
			if v != nil {
				panic(v)
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

func asError(v any) error {
	err, _ := v.(error)
	return err
}
