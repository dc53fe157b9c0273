package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Summary is the machine-readable form of a Result (load -json).
type Summary struct {
	Mode          string               `json:"mode"`
	Clients       int                  `json:"clients"`
	ElapsedS      float64              `json:"elapsed_s"`
	Iterations    int64                `json:"iterations"`
	Requests      int64                `json:"requests"`
	ThroughputRPS float64              `json:"throughput_rps"`
	Cycles        int64                `json:"cycles,omitempty"`
	CyclesPerS    float64              `json:"cycles_per_s,omitempty"`
	Empty         int64                `json:"pool_empty_503,omitempty"`
	Errors        int64                `json:"errors"`
	Ops           map[string]OpSummary `json:"ops"`
	Lost          []string             `json:"lost,omitempty"`
	Unreturned    []string             `json:"unreturned,omitempty"`
}

// OpSummary is one operation's figures; latencies in milliseconds.
type OpSummary struct {
	Count  uint64           `json:"count"`
	MeanMS float64          `json:"mean_ms"`
	P50MS  float64          `json:"p50_ms"`
	P90MS  float64          `json:"p90_ms"`
	P99MS  float64          `json:"p99_ms"`
	MaxMS  float64          `json:"max_ms"`
	Status map[string]int64 `json:"status"`
	Errors map[string]int64 `json:"errors,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// isError reports whether a status key counts as an error for op: anything
// but 200, except 503 on checkout (pool empty is expected under load).
func isError(op, key string) bool {
	return key != "200" && !(op == OpCheckout && key == "503")
}

// Summary computes the machine-readable figures.
func (r *Result) Summary() Summary {
	s := Summary{Mode: r.Mode, Clients: r.Clients, ElapsedS: r.Elapsed.Seconds(), Iterations: r.Iterations,
		Requests: r.Requests(), Cycles: r.Cycles, Empty: r.Empty, Ops: map[string]OpSummary{},
		Lost: r.Lost, Unreturned: r.Unreturned}
	if sec := r.Elapsed.Seconds(); sec > 0 {
		s.ThroughputRPS = float64(s.Requests) / sec
		s.CyclesPerS = float64(r.Cycles) / sec
	}
	for name, o := range r.Ops {
		h := &o.Latency
		os := OpSummary{Count: h.Count(), MeanMS: ms(h.Mean()), P50MS: ms(h.Quantile(0.50)),
			P90MS: ms(h.Quantile(0.90)), P99MS: ms(h.Quantile(0.99)), MaxMS: ms(h.Max()), Status: o.Status}
		for k, v := range o.Status {
			if isError(name, k) {
				if os.Errors == nil {
					os.Errors = map[string]int64{}
				}
				os.Errors[k] += v
				s.Errors += v
			}
		}
		s.Ops[name] = os
	}
	return s
}

// WriteJSON writes the summary as indented JSON.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r.Summary())
}

// opOrder lists operations in the order people read them.
var opOrder = []string{OpCheckout, OpGet, OpReturn, OpStatus, OpVM}

// WriteText prints the figures for people.
func (r *Result) WriteText(w io.Writer) {
	s := r.Summary()
	fmt.Fprintf(w, "mode %s, %d clients, %.2fs, %d iterations, %d requests: %.1f req/s\n",
		s.Mode, s.Clients, s.ElapsedS, s.Iterations, s.Requests, s.ThroughputRPS)
	if s.Mode == ModeCheckout {
		fmt.Fprintf(w, "checkout cycles %d (%.1f/s), pool empty (503) %d\n", s.Cycles, s.CyclesPerS, s.Empty)
	}
	fmt.Fprintf(w, "%-9s %8s %9s %9s %9s %9s %9s\n", "op", "count", "mean", "p50", "p90", "p99", "max")
	for _, name := range opOrder {
		o, ok := s.Ops[name]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "%-9s %8d %7.2fms %7.2fms %7.2fms %7.2fms %7.2fms\n",
			name, o.Count, o.MeanMS, o.P50MS, o.P90MS, o.P99MS, o.MaxMS)
	}
	fmt.Fprintf(w, "errors: %d", s.Errors)
	for _, name := range opOrder {
		if o := s.Ops[name]; len(o.Errors) > 0 {
			fmt.Fprintf(w, "; %s %s", name, fmtCounts(o.Errors))
		}
	}
	fmt.Fprintln(w)
	if len(s.Lost) > 0 {
		fmt.Fprintf(w, "LOST (held, first DELETE answered 404): %s\n", strings.Join(s.Lost, " "))
	}
	if len(s.Unreturned) > 0 {
		fmt.Fprintf(w, "not returned (DELETE never answered 200): %d\n", len(s.Unreturned))
	}
}

func fmtCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
