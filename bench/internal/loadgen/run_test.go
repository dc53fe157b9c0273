package loadgen

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/bench/internal/fakepool"
)

func TestParseCheckout(t *testing.T) {
	for in, want := range map[string][]string{
		`{"ok":true,"p":{"hostname":"abc"}}`:                          {"abc"},
		`{"ok":true,"domain":"x.com","p":{"hostname":"abc"}}`:         {"abc"},
		`{"ok":true,"p":{"hostname":["a","b"]},"q":{"hostname":"c"}}`: {"a", "b", "c"},
	} {
		got, err := ParseCheckout([]byte(in))
		slices.Sort(got)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseCheckout(%s) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{`{"ok":false}`, `{"ok":true}`, `nope`, `{"ok":true,"p":{"hostname":7}}`,
		`{"ok":true,"p":{"hostname":"a b"}}`, `{"ok":true,"p":{"hostname":""}}`} {
		if got, err := ParseCheckout([]byte(in)); err == nil {
			t.Errorf("ParseCheckout(%s) = %v, want an error", in, got)
		}
	}
}

func runFake(t *testing.T, fp *fakepool.Server, cfg Config) *Result {
	t.Helper()
	srv := httptest.NewServer(fp)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL
	if cfg.Duration == 0 {
		cfg.Duration = time.Minute // the count bounds these runs
	}
	res, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRunCheckoutRecords(t *testing.T) {
	fp := fakepool.New(map[string]int{"a": 3, "b": 2})
	rec := NewRecorder(nil, true)
	res := runFake(t, fp, Config{Clients: 4, Max: 200, Mode: ModeCheckout, Pools: []string{"a", "b"}, Recorder: rec, EmptyWait: -1})
	if res.Iterations != 200 || res.Cycles+res.Empty != 200 || res.Cycles == 0 {
		t.Fatalf("iterations %d cycles %d empty %d", res.Iterations, res.Cycles, res.Empty)
	}
	rep := Check(rec.Events())
	if !rep.OK() || int64(rep.Checkouts) != res.Cycles || rep.Returns != rep.Checkouts || len(rep.Held) != 0 {
		t.Fatalf("record report %+v, cycles %d", rep, res.Cycles)
	}
	if s := res.Summary(); s.Errors != 0 || s.Ops[OpGet].Count != uint64(res.Cycles) {
		t.Fatalf("summary %+v", s)
	}
	if fp.Running() != 0 {
		t.Fatalf("%d VMs still checked out", fp.Running())
	}
}

func TestRunCatchesBugs(t *testing.T) {
	t.Run("reuse", func(t *testing.T) {
		rec := NewRecorder(nil, true)
		fp := fakepool.New(map[string]int{"a": 1})
		fp.Reuse = true
		runFake(t, fp, Config{Clients: 2, Max: 20, Mode: ModeCheckout, Pools: []string{"a"}, Recorder: rec, EmptyWait: -1})
		if rep := Check(rec.Events()); rep.OK() || len(rep.Double) != 1 {
			t.Fatalf("double hand-out not caught: %+v", rep)
		}
	})
	t.Run("forget", func(t *testing.T) {
		fp := fakepool.New(map[string]int{"a": 5})
		fp.Forget = true
		res := runFake(t, fp, Config{Clients: 1, Max: 3, Mode: ModeCheckout, Pools: []string{"a"}})
		if len(res.Lost) != 3 || len(res.Unreturned) != 3 || res.Summary().Errors != 3 {
			t.Fatalf("lost %v unreturned %v", res.Lost, res.Unreturned)
		}
	})
}

func TestRunStopsOnDeadline(t *testing.T) {
	fp := fakepool.New(map[string]int{"a": 1})
	res := runFake(t, fp, Config{Clients: 2, Max: 1 << 40, Mode: ModeStatus, Duration: 50 * time.Millisecond})
	if res.Iterations == 0 || res.Summary().Errors != 0 {
		t.Fatalf("iterations %d, summary %+v", res.Iterations, res.Summary())
	}
}
