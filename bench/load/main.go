// Command load drives a running vmpooler with concurrent keep-alive clients
// for a fixed time and count, and prints throughput, latency percentiles and
// errors by status. It only talks to loopback addresses.
//
// Usage:
//
//	go run ./bench/load -url http://127.0.0.1:4567 -clients 32 -duration 10s -max 100000 \
//	    -mode checkout|status|vm [-pool NAME[,NAME...]] [-token T] [-record FILE] [-json]
//	go run ./bench/load -check FILE    verify a record file: no hostname handed out twice
//
// Checkout mode runs POST /api/v1/vm/<pool> → GET /api/v1/vm/<host> →
// DELETE /api/v1/vm/<host> cycles; a 503 (pool empty) is counted apart, not as
// an error. -record appends "checkout <host> <unixnano>" when a checkout
// answered and "return <host> <unixnano>" when its DELETE answered 200.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vmpooler/vmpooler/bench/internal/loadgen"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
	}
	os.Exit(code)
}

// run parses args, runs the load (or the record check) and returns the exit
// code: 0 fine, 1 violations or errors found, 2 bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg loadgen.Config
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:4567", "pooler base URL (loopback only)")
	fs.IntVar(&cfg.Clients, "clients", 32, "concurrent clients")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to run")
	fs.Int64Var(&cfg.Max, "max", 100000, "most iterations in total (requests, or checkout cycles)")
	fs.StringVar(&cfg.Mode, "mode", loadgen.ModeCheckout, "checkout, status or vm")
	pools := fs.String("pool", "", "checkout mode: pool name(s), comma-separated; client i uses pool i mod n")
	fs.StringVar(&cfg.Token, "token", "", "X-AUTH-TOKEN to send")
	fs.DurationVar(&cfg.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.DurationVar(&cfg.EmptyWait, "empty-wait", 20*time.Millisecond, "pause after a 503 (pool empty); negative for none")
	record := fs.String("record", "", "checkout mode: append checkout/return events to this file")
	jsonOut := fs.Bool("json", false, "print a JSON summary instead of text")
	check := fs.String("check", "", "verify a record file instead of running load")
	if err := fs.Parse(args); err != nil {
		return 2, nil
	}
	if fs.NArg() > 0 {
		return 2, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *check != "" {
		return checkFile(*check, stdout)
	}
	if *pools != "" {
		cfg.Pools = strings.Split(*pools, ",")
	}
	if err := cfg.Validate(); err != nil {
		return 2, err
	}
	if *record != "" {
		if cfg.Mode != loadgen.ModeCheckout {
			return 2, errors.New("-record needs -mode checkout")
		}
		f, err := os.OpenFile(*record, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return 1, err
		}
		defer f.Close()
		cfg.Recorder = loadgen.NewRecorder(f, false)
	}
	res, err := loadgen.Run(ctx, cfg)
	if err != nil {
		return 1, err
	}
	if cfg.Recorder != nil {
		if err := cfg.Recorder.Flush(); err != nil {
			return 1, fmt.Errorf("record: %w", err)
		}
	}
	if *jsonOut {
		if err := res.WriteJSON(stdout); err != nil {
			return 1, err
		}
	} else {
		res.WriteText(stdout)
	}
	if len(res.Lost) > 0 {
		return 1, fmt.Errorf("%d held VM(s) unknown to the pooler on return", len(res.Lost))
	}
	return 0, nil
}

func checkFile(path string, stdout io.Writer) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 1, err
	}
	defer f.Close()
	events, err := loadgen.ParseRecords(f)
	if err != nil {
		return 1, err
	}
	rep := loadgen.Check(events)
	rep.WriteText(stdout)
	if !rep.OK() {
		return 1, errors.New("record check failed")
	}
	fmt.Fprintln(stdout, "ok: no hostname handed out twice")
	return 0, nil
}
