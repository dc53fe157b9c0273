// Command crash checks that vmpooler never loses or double-hands a VM when
// it is killed under load. It starts the standalone simulator and the pooler
// (a binary the caller built) on a temporary database, drives concurrent
// checkout → get → return cycles, SIGKILLs and restarts the pooler at random
// moments, then verifies: (a) no hostname was handed out twice; (b) the
// database passes `vmpooler check` (bbolt consistency and store invariants);
// (c) every VM in the simulator's pool folders is known to the store; (d)
// every pool converged back to its size. It exits 1 on any violation and 2
// if it could not run.
//
// Usage:
//
//	go build -o /tmp/vmpooler . && go run ./bench/crash -bin /tmp/vmpooler [-kills 5 -clients 16 -duration 60s] [-short] [-seed N] [-keep]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/vmpooler/vmpooler/bench/internal/loadgen"
)

type options struct {
	bin            string
	kills, clients int
	duration       time.Duration
	converge       time.Duration
	restartTimeout time.Duration
	seed           uint64
	keep           bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "crash:", err)
		return 2
	}
	dir, err := os.MkdirTemp("", "vmpooler-crash-")
	if err != nil {
		fmt.Fprintln(stderr, "crash:", err)
		return 2
	}
	h := &harness{o: o, dir: dir, out: stdout, rng: rand.New(rand.NewPCG(o.seed, o.seed^0x9e3779b97f4a7c15)),
		hc: &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	code := 0
	if err := h.run(ctx); err != nil {
		fmt.Fprintln(stderr, "crash: could not complete:", err)
		code = 2
	} else {
		h.rep.write(stdout)
		if h.rep.failures() > 0 {
			code = 1
		}
	}
	h.cleanup()
	if code != 0 || o.keep {
		fmt.Fprintf(stdout, "files kept in %s (config, logs, records.txt)\n", dir)
	} else {
		os.RemoveAll(dir)
	}
	return code
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("crash", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.bin, "bin", "", "the vmpooler binary to test (required; build it first)")
	fs.IntVar(&o.kills, "kills", 5, "how many times to SIGKILL the pooler")
	fs.IntVar(&o.clients, "clients", 16, "concurrent load clients")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "how long the load runs")
	fs.DurationVar(&o.converge, "converge", 60*time.Second, "how long the pools may take to refill at the end")
	fs.DurationVar(&o.restartTimeout, "restart-timeout", 15*time.Second, "how long a restarted pooler may take to answer /status")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed for pool sizes and kill times (0 = from the clock)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory even if everything passed")
	short := fs.Bool("short", false, "CI-sized run: 2 kills, 15s")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *short {
		o.kills, o.duration = 2, 15*time.Second
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.bin == "":
		return o, errors.New("-bin is required (go build -o /tmp/vmpooler . first)")
	case o.kills < 0 || o.kills > 100:
		return o, fmt.Errorf("-kills must be 0..100, got %d", o.kills)
	case o.clients < 1 || o.clients > loadgen.MaxClients:
		return o, fmt.Errorf("-clients must be 1..%d, got %d", loadgen.MaxClients, o.clients)
	case o.duration < time.Second || o.duration > time.Hour:
		return o, fmt.Errorf("-duration must be 1s..1h, got %s", o.duration)
	case o.converge <= 0 || o.restartTimeout <= 0:
		return o, errors.New("-converge and -restart-timeout must be positive")
	}
	bin, err := exec.LookPath(o.bin)
	if err != nil {
		return o, fmt.Errorf("-bin: %w", err)
	}
	if o.bin, err = filepath.Abs(bin); err != nil {
		return o, err
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	return o, nil
}

// harness is one crash run.
type harness struct {
	o      options
	dir    string
	out    io.Writer
	rng    *rand.Rand
	hc     *http.Client
	setup  Setup
	cfg    string
	base   string
	sim    *proc
	pooler *proc
	starts int
	rep    report
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.out, format+"\n", args...)
}

func (h *harness) cleanup() {
	for _, p := range []*proc{h.pooler, h.sim} {
		if p != nil && !p.exited() {
			p.kill()
		}
	}
}

func (h *harness) run(ctx context.Context) error {
	if err := h.prepare(); err != nil {
		return err
	}
	h.logf("crash: seed %d, pools %s, %d clients, %s of load, %d kills, dir %s",
		h.o.seed, poolList(h.setup.Pools), h.o.clients, h.o.duration, h.o.kills, h.dir)
	var err error
	h.sim, err = startProc("simulator", h.o.bin, []string{"simulator", "-listen", h.setup.SimAddr, "-config", h.cfg,
		"-username", h.setup.Username, "-password", h.setup.Password, "-boot-delay", "200ms"}, filepath.Join(h.dir, "simulator.log"))
	if err != nil {
		return err
	}
	if err := waitTCP(h.setup.SimAddr, h.sim, 60*time.Second); err != nil {
		return err
	}
	took, err := h.startPooler(ctx, 60*time.Second)
	if err != nil {
		return err
	}
	h.logf("pooler up in %.2fs", took.Seconds())
	st, fillTook := h.waitFull(ctx, h.o.converge)
	ok, figures := converged(h.setup.Pools, st)
	h.logf("initial fill in %.2fs: %s", fillTook.Seconds(), figures)
	if !ok {
		h.rep.add("initial fill", false, "pools not filled within %s: %s", h.o.converge, figures)
	}
	if err := h.loadAndKill(ctx); err != nil {
		return err
	}
	return h.verify(ctx)
}

// prepare picks ports and pool sizes and writes the configuration.
func (h *harness) prepare() error {
	listen, err := freePort()
	if err != nil {
		return err
	}
	sim, err := freePort()
	if err != nil {
		return err
	}
	h.setup = Setup{Listen: listen, SimAddr: sim, Database: filepath.Join(h.dir, "vmpooler.db"),
		Username: "user", Password: "pass",
		Pools: []PoolSize{{"bench-a", 5 + h.rng.IntN(6)}, {"bench-b", 5 + h.rng.IntN(6)}}}
	h.cfg, err = WriteConfig(h.dir, h.setup)
	h.base = "http://" + listen
	return err
}

func poolList(ps []PoolSize) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s=%d", p.Name, p.Size))
	}
	return strings.Join(parts, " ")
}

// startPooler starts the pooler and waits until /status answers. A start
// that exits early (e.g. the database is still locked right after a kill)
// is retried until timeout.
func (h *harness) startPooler(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	deadline := t0.Add(timeout)
	var last string
	for attempt := 1; time.Now().Before(deadline); attempt++ {
		h.starts++
		p, err := startProc("pooler", h.o.bin, []string{"-config", h.cfg}, filepath.Join(h.dir, fmt.Sprintf("pooler-%d.log", h.starts)))
		if err != nil {
			return 0, err
		}
		h.pooler = p
		for time.Now().Before(deadline) && !p.exited() {
			if _, err := fetchStatus(ctx, h.hc, h.base); err == nil {
				return time.Since(t0), nil
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !p.exited() {
			p.kill()
			return 0, fmt.Errorf("pooler did not answer /status within %s\n%s", timeout, p.logTail(2000))
		}
		last = fmt.Sprintf("attempt %d exited (%v): %s", attempt, p.err, p.logTail(500))
		time.Sleep(200 * time.Millisecond)
	}
	return 0, fmt.Errorf("pooler did not start within %s; last: %s", timeout, last)
}

// waitFull polls /status until every pool is full of ready VMs or timeout,
// and returns the last figures seen.
func (h *harness) waitFull(ctx context.Context, timeout time.Duration) (map[string]PoolStatus, time.Duration) {
	t0 := time.Now()
	var last map[string]PoolStatus
	for time.Since(t0) < timeout && ctx.Err() == nil {
		if st, err := fetchStatus(ctx, h.hc, h.base); err == nil {
			last = st
			if full(h.setup.Pools, st) {
				break
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return last, time.Since(t0)
}

// killTimes returns n sorted offsets in [10%, 85%] of d.
func killTimes(rng *rand.Rand, n int, d time.Duration) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = d/10 + time.Duration(rng.Int64N(int64(d*3/4)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// loadAndKill runs the load and kills and restarts the pooler meanwhile.
func (h *harness) loadAndKill(ctx context.Context) error {
	recFile, err := os.Create(filepath.Join(h.dir, "records.txt"))
	if err != nil {
		return err
	}
	defer recFile.Close()
	rec := loadgen.NewRecorder(recFile, true)
	cfg := loadgen.Config{URL: h.base, Clients: h.o.clients, Duration: h.o.duration, Max: 1 << 40,
		Mode: loadgen.ModeCheckout, Pools: []string{h.setup.Pools[0].Name, h.setup.Pools[1].Name},
		Recorder: rec, Timeout: 5 * time.Second, EmptyWait: 20 * time.Millisecond, ErrorWait: 50 * time.Millisecond}
	type outcome struct {
		res *loadgen.Result
		err error
	}
	done := make(chan outcome, 1)
	start := time.Now()
	go func() {
		res, err := loadgen.Run(ctx, cfg)
		done <- outcome{res, err}
	}()

	var restarts []time.Duration
	var killErr error
	for i, at := range killTimes(h.rng, h.o.kills, h.o.duration) {
		if wait := time.Until(start.Add(at)); wait > 0 {
			time.Sleep(wait)
		} else {
			time.Sleep(time.Duration(500+h.rng.IntN(1000)) * time.Millisecond) // let it serve a little
		}
		if ctx.Err() != nil {
			break
		}
		pid := h.pooler.cmd.Process.Pid
		h.pooler.kill()
		t, err := h.startPooler(ctx, h.o.restartTimeout)
		if err != nil {
			killErr = fmt.Errorf("restart after kill %d: %w", i+1, err)
			h.logf("kill %d at %.1fs: pid %d killed; NO RESTART: %v", i+1, time.Since(start).Seconds(), pid, err)
			break
		}
		restarts = append(restarts, t)
		h.logf("kill %d at %.1fs: pid %d killed, restarted in %.2fs", i+1, time.Since(start).Seconds(), pid, t.Seconds())
	}
	out := <-done
	_ = rec.Flush()
	if out.err != nil {
		return out.err
	}
	h.logf("load:")
	out.res.WriteText(h.out)
	h.judgeRestarts(restarts, killErr)
	h.judgeRecords(rec.Events(), out.res)
	return nil
}

func (h *harness) judgeRestarts(ts []time.Duration, killErr error) {
	if killErr != nil {
		h.rep.add("restarts", false, "%d of %d restarts answered /status; %v", len(ts), h.o.kills, killErr)
		return
	}
	if len(ts) == 0 {
		h.rep.add("restarts", h.o.kills == 0, "no kills done")
		return
	}
	lo, hi, sum := ts[0], ts[0], time.Duration(0)
	for _, t := range ts {
		lo, hi, sum = min(lo, t), max(hi, t), sum+t
	}
	h.rep.add("restarts", len(ts) == h.o.kills, "%d of %d SIGKILLs restarted and answered /status within %s (min %.2fs, mean %.2fs, max %.2fs)",
		len(ts), h.o.kills, h.o.restartTimeout, lo.Seconds(), (sum / time.Duration(len(ts))).Seconds(), hi.Seconds())
}

func (h *harness) judgeRecords(events []loadgen.Event, res *loadgen.Result) {
	r := loadgen.Check(events)
	detail := fmt.Sprintf("%d checkouts of %d distinct hostnames, %d returns, %d held at the end", r.Checkouts, r.Hosts, r.Returns, len(r.Held))
	var probs []string
	for _, d := range r.Double {
		probs = append(probs, fmt.Sprintf("%s checked out %d times (overlapping=%v)", d.Host, d.Count, d.Overlap))
	}
	probs = append(probs, r.BadReturns...)
	if len(probs) > 0 {
		detail += "; VIOLATIONS: " + clip(probs, 20)
	}
	h.rep.add("(a) no hostname handed out twice", r.OK() && r.Checkouts > 0, "%s", detail)
	if r.Checkouts == 0 {
		h.rep.add("(a') load did checkouts", false, "no checkout succeeded: the test proved nothing")
	}
	h.rep.add("(a'') no held VM forgotten", len(res.Lost) == 0,
		"%d VMs answered 404 to their first DELETE although checked out%s; %d not returned (DELETE unanswered around a kill)",
		len(res.Lost), bracket(res.Lost), len(res.Unreturned))
}

// verify lets the pools converge, stops the pooler and checks the store
// against the simulator.
func (h *harness) verify(ctx context.Context) error {
	st, took := h.waitFull(ctx, h.o.converge)
	ok, figures := converged(h.setup.Pools, st)
	h.rep.add("(d) pools converged to their size", ok, "after %.1fs: %s", took.Seconds(), figures)

	t0 := time.Now()
	graceful, err := h.pooler.stop(30 * time.Second)
	h.rep.add("graceful stop", graceful, "pooler stopped on SIGTERM in %.2fs (exit: %v)", time.Since(t0).Seconds(), err)

	out, errOut, err := runCapture(ctx, time.Minute, h.o.bin, "check", "-config", h.cfg)
	h.rep.add("(b) store check", err == nil, "`vmpooler check` (bbolt consistency + store invariants): %s %s (exit: %v)",
		strings.TrimSpace(out), strings.TrimSpace(errOut), err)

	listed, errOut, err := runCapture(ctx, time.Minute, h.o.bin, "check", "-config", h.cfg, "-list-vms")
	if err != nil {
		h.rep.add("(c) simulator VMs known to the store", false, "check -list-vms failed: %v %s", err, errOut)
		return nil
	}
	inv, errOut, err := runCapture(ctx, time.Minute, h.o.bin, "inventory", "-config", h.cfg)
	if err != nil {
		h.rep.add("(c) simulator VMs known to the store", false, "inventory failed: %v %s", err, errOut)
		return nil
	}
	store, sim := lines(listed), lines(inv)
	unknown, missing := minus(sim, store), minus(store, sim)
	h.rep.add("(c) simulator VMs known to the store", len(unknown) == 0 && len(sim) > 0,
		"%d VMs in the pool folders, %d live in the store, %d unknown to the store%s; %d live in the store but absent from vSphere%s (a note, not a violation)",
		len(sim), len(store), len(unknown), bracket(unknown), len(missing), bracket(missing))
	if graceful, err := h.sim.stop(10 * time.Second); !graceful {
		h.logf("note: simulator: %v", err)
	}
	return nil
}
