package loadgen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Operation names in a Result.
const (
	OpCheckout = "checkout"
	OpGet      = "get"
	OpReturn   = "return"
	OpStatus   = "status"
	OpVM       = "vm"
)

// Status keys besides HTTP codes.
const (
	StatusTransport = "transport" // no HTTP answer (refused, reset, timeout)
	StatusBadBody   = "badbody"   // 200 with a body that does not parse
)

const maxBody = 4 << 20

// OpStats is the latency and outcome of one kind of request.
type OpStats struct {
	Latency Histogram
	Status  map[string]int64 // "200", "503", "transport", "state=ready", ...
}

func newOpStats() *OpStats { return &OpStats{Status: map[string]int64{}} }

func (o *OpStats) merge(p *OpStats) {
	o.Latency.Merge(&p.Latency)
	for k, v := range p.Status {
		o.Status[k] += v
	}
}

// Result is what a run measured.
type Result struct {
	Mode       string
	Clients    int
	Elapsed    time.Duration
	Iterations int64 // loop iterations started
	Cycles     int64 // checkout mode: checkouts that went through GET and DELETE
	Empty      int64 // checkout mode: 503 answers (pool empty), not failures
	Ops        map[string]*OpStats
	// Lost lists hosts whose first DELETE answered 404 although the client
	// held them (checkout answered 200, no earlier DELETE attempt): the
	// pooler forgot a VM it had handed out.
	Lost []string
	// Unreturned lists hosts held when the run ended whose DELETE never
	// answered 200 (e.g. the pooler was killed in between).
	Unreturned []string
}

// Requests returns the number of HTTP requests that got an answer or failed.
func (r *Result) Requests() int64 {
	var n int64
	for _, o := range r.Ops {
		n += int64(o.Latency.Count())
	}
	return n
}

type worker struct {
	g          *runner
	pool       string
	ops        map[string]*OpStats
	cycles     int64
	empty      int64
	lost       []string
	unreturned []string
}

type runner struct {
	cfg     Config
	base    string
	hc      *http.Client
	claimed atomic.Int64
}

// Run drives the pooler until cfg.Duration passes, cfg.Max iterations have
// started, or ctx is cancelled. A checkout cycle under way when the run ends
// is finished (its VMs returned) with a fresh per-request deadline.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	tr := &http.Transport{
		Proxy:               nil, // never through a proxy: loopback only
		DialContext:         loopbackDialer().DialContext,
		MaxIdleConns:        cfg.Clients,
		MaxIdleConnsPerHost: cfg.Clients,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()
	g := &runner{cfg: cfg, base: apiBase(cfg.URL), hc: &http.Client{
		Transport:     tr,
		Timeout:       cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	workers := make([]*worker, cfg.Clients)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range workers {
		w := &worker{g: g, ops: map[string]*OpStats{}}
		if len(cfg.Pools) > 0 {
			w.pool = cfg.Pools[i%len(cfg.Pools)]
		}
		workers[i] = w
		wg.Go(func() {
			w.loop(ctx)
		})
	}
	wg.Wait()
	res := &Result{Mode: cfg.Mode, Clients: cfg.Clients, Elapsed: time.Since(start), Ops: map[string]*OpStats{}}
	res.Iterations = min(g.claimed.Load(), cfg.Max)
	for _, w := range workers {
		for name, o := range w.ops {
			if res.Ops[name] == nil {
				res.Ops[name] = newOpStats()
			}
			res.Ops[name].merge(o)
		}
		res.Cycles += w.cycles
		res.Empty += w.empty
		res.Lost = append(res.Lost, w.lost...)
		res.Unreturned = append(res.Unreturned, w.unreturned...)
	}
	return res, nil
}

func (w *worker) loop(ctx context.Context) {
	for ctx.Err() == nil {
		if w.g.claimed.Add(1) > w.g.cfg.Max {
			return
		}
		switch w.g.cfg.Mode {
		case ModeStatus:
			w.simple(ctx, OpStatus, w.g.base+"/status")
		case ModeVM:
			w.simple(ctx, OpVM, w.g.base+"/vm")
		case ModeCheckout:
			w.cycle(ctx)
		}
	}
}

func (w *worker) simple(ctx context.Context, op, u string) {
	code, _, err := w.do(ctx, op, http.MethodGet, u)
	if err != nil || code != http.StatusOK {
		sleep(ctx, w.g.cfg.ErrorWait)
	}
}

// do sends one request and records its latency and outcome. A request cut
// short because ctx ended is not counted.
func (w *worker) do(ctx context.Context, op, method, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return 0, nil, err
	}
	if w.g.cfg.Token != "" {
		req.Header.Set("X-AUTH-TOKEN", w.g.cfg.Token)
	}
	t0 := time.Now()
	resp, err := w.g.hc.Do(req)
	var body []byte
	if err == nil {
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
	}
	lat := time.Since(t0)
	if err != nil && ctx.Err() != nil {
		return 0, nil, err
	}
	o := w.ops[op]
	if o == nil {
		o = newOpStats()
		w.ops[op] = o
	}
	o.Latency.Record(lat)
	if err != nil {
		o.Status[StatusTransport]++
		return 0, nil, err
	}
	o.Status[strconv.Itoa(resp.StatusCode)]++
	return resp.StatusCode, body, nil
}

func (w *worker) count(op, key string) { w.ops[op].Status[key]++ }

// cycle checks a VM out, reads it and gives it back.
func (w *worker) cycle(ctx context.Context) {
	code, body, err := w.do(ctx, OpCheckout, http.MethodPost, w.g.base+"/vm/"+url.PathEscape(w.pool))
	switch {
	case err != nil:
		sleep(ctx, w.g.cfg.ErrorWait)
		return
	case code == http.StatusServiceUnavailable:
		w.empty++
		sleep(ctx, w.g.cfg.EmptyWait)
		return
	case code != http.StatusOK:
		sleep(ctx, w.g.cfg.ErrorWait)
		return
	}
	at := time.Now()
	hosts, err := ParseCheckout(body)
	if err != nil {
		w.count(OpCheckout, StatusBadBody)
		return
	}
	if r := w.g.cfg.Recorder; r != nil {
		for _, h := range hosts {
			r.Record(KindCheckout, h, at)
		}
	}
	// Finish the cycle even if the run ends now, so no VM stays checked out.
	fin := context.WithoutCancel(ctx)
	for _, h := range hosts {
		w.get(fin, h)
	}
	for _, h := range hosts {
		w.giveBack(fin, h)
	}
	w.cycles++
}

// get reads a held VM and checks that the pooler says it is running.
func (w *worker) get(ctx context.Context, host string) {
	code, body, err := w.do(ctx, OpGet, http.MethodGet, w.g.base+"/vm/"+url.PathEscape(host))
	if err != nil || code != http.StatusOK {
		return
	}
	var m map[string]json.RawMessage
	var vm struct {
		State string `json:"state"`
	}
	if json.Unmarshal(body, &m) != nil || json.Unmarshal(m[host], &vm) != nil {
		w.count(OpGet, StatusBadBody)
		return
	}
	if vm.State != "running" {
		w.count(OpGet, "state="+vm.State)
	}
}

// giveBack deletes a held VM, retrying a few times when there is no answer
// (the pooler may be restarting). The return is recorded only on 200.
func (w *worker) giveBack(ctx context.Context, host string) {
	u := w.g.base + "/vm/" + url.PathEscape(host)
	unsure := false // an earlier attempt may have reached the pooler
	for attempt := 0; attempt < 8; attempt++ {
		code, _, err := w.do(ctx, OpReturn, http.MethodDelete, u)
		switch {
		case err == nil && code == http.StatusOK:
			if r := w.g.cfg.Recorder; r != nil {
				r.Record(KindReturn, host, time.Now())
			}
			return
		case err == nil && code == http.StatusNotFound:
			if !unsure {
				w.lost = append(w.lost, host)
			}
			w.unreturned = append(w.unreturned, host)
			return
		case err == nil && code < 500:
			w.unreturned = append(w.unreturned, host)
			return // a client error will not change on retry
		}
		unsure = true
		sleep(ctx, time.Duration(attempt+1)*max(w.g.cfg.ErrorWait, 50*time.Millisecond))
	}
	w.unreturned = append(w.unreturned, host)
}

// ParseCheckout returns the hostnames in a checkout answer:
// {"ok":true,"<pool>":{"hostname":"x"}} or {"hostname":["x","y"]}, possibly
// for several pools and with a "domain" key (v1).
func ParseCheckout(body []byte) ([]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("checkout answer: %w", err)
	}
	var ok bool
	if err := json.Unmarshal(m["ok"], &ok); err != nil || !ok {
		return nil, errors.New(`checkout answer: "ok" is not true`)
	}
	var hosts []string
	for k, raw := range m {
		if k == "ok" {
			continue
		}
		var entry struct {
			Hostname json.RawMessage `json:"hostname"`
		}
		if json.Unmarshal(raw, &entry) != nil || entry.Hostname == nil {
			continue // "domain" and other non-pool keys
		}
		var one string
		var many []string
		switch {
		case json.Unmarshal(entry.Hostname, &one) == nil && one != "":
			hosts = append(hosts, one)
		case json.Unmarshal(entry.Hostname, &many) == nil && len(many) > 0:
			hosts = append(hosts, many...)
		default:
			return nil, fmt.Errorf("checkout answer: pool %q: bad hostname %s", k, entry.Hostname)
		}
	}
	if len(hosts) == 0 {
		return nil, errors.New("checkout answer: no hostname")
	}
	for _, h := range hosts {
		if h == "" || len(h) > 255 || strings.ContainsAny(h, " \t\r\n/") {
			return nil, fmt.Errorf("checkout answer: bad hostname %q", h)
		}
	}
	return hosts, nil
}
