package loadgen

import (
	"bufio"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Event kinds in a record file.
const (
	KindCheckout = "checkout" // the POST that handed the host out answered 200
	KindReturn   = "return"   // the DELETE that gave it back answered 200
)

// Event is one line of a record file: "<kind> <host> <unixnano>".
type Event struct {
	Kind string
	Host string
	At   int64 // Unix nanoseconds
}

// String formats e as one record line without the newline.
func (e Event) String() string { return fmt.Sprintf("%s %s %d", e.Kind, e.Host, e.At) }

// Recorder collects events from concurrent clients, writing each as a line
// to w (if not nil) and keeping them in memory (if keep).
type Recorder struct {
	mu     sync.Mutex
	w      *bufio.Writer
	keep   bool
	events []Event
	err    error
}

// NewRecorder returns a Recorder writing to w (may be nil); keep retains the
// events for Events.
func NewRecorder(w io.Writer, keep bool) *Recorder {
	r := &Recorder{keep: keep}
	if w != nil {
		r.w = bufio.NewWriter(w)
	}
	return r
}

// Record appends one event.
func (r *Recorder) Record(kind, host string, at time.Time) {
	e := Event{Kind: kind, Host: host, At: at.UnixNano()}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keep {
		r.events = append(r.events, e)
	}
	if r.w != nil && r.err == nil {
		_, r.err = r.w.WriteString(e.String() + "\n")
	}
}

// Events returns a copy of the kept events.
func (r *Recorder) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Flush writes buffered lines and returns the first write error.
func (r *Recorder) Flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w != nil && r.err == nil {
		r.err = r.w.Flush()
	}
	return r.err
}

// ParseRecords reads a record file.
func ParseRecords(rd io.Reader) ([]Event, error) {
	var out []Event
	sc := bufio.NewScanner(rd)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 || (f[0] != KindCheckout && f[0] != KindReturn) {
			return nil, fmt.Errorf("record line %d: want \"checkout|return <host> <unixnano>\", got %q", line, text)
		}
		at, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("record line %d: bad time %q", line, f[2])
		}
		out = append(out, Event{Kind: f[0], Host: f[1], At: at})
	}
	return out, sc.Err()
}

// DoubleHandout is a hostname that was checked out more than once. Hostnames
// are never reused and a returned VM is destroyed, so any second checkout is
// a violation; Overlap says the second came before the first was returned
// (two clients held it at once).
type DoubleHandout struct {
	Host    string
	First   int64 // Unix ns of the first checkout
	Second  int64 // Unix ns of the second checkout
	Count   int   // total checkouts of this host
	Overlap bool
}

// RecordReport is what Check found in a set of events.
type RecordReport struct {
	Events     int
	Checkouts  int
	Returns    int
	Hosts      int             // distinct hostnames checked out
	Held       []string        // checked out and never returned (sorted)
	Double     []DoubleHandout // sorted by host
	BadReturns []string        // "host: why" for returns without a matching earlier checkout
}

// OK reports whether no violation was found.
func (r RecordReport) OK() bool { return len(r.Double) == 0 && len(r.BadReturns) == 0 }

// Check verifies that no hostname was handed out twice and that every return
// follows its checkout.
func Check(events []Event) RecordReport {
	type hist struct{ checkouts, returns []int64 }
	by := map[string]*hist{}
	rep := RecordReport{Events: len(events)}
	for _, e := range events {
		h := by[e.Host]
		if h == nil {
			h = &hist{}
			by[e.Host] = h
		}
		if e.Kind == KindCheckout {
			h.checkouts = append(h.checkouts, e.At)
			rep.Checkouts++
		} else {
			h.returns = append(h.returns, e.At)
			rep.Returns++
		}
	}
	for host, h := range by {
		sortInt64(h.checkouts)
		sortInt64(h.returns)
		if len(h.checkouts) > 0 {
			rep.Hosts++
		}
		if len(h.checkouts) > 1 {
			d := DoubleHandout{Host: host, First: h.checkouts[0], Second: h.checkouts[1], Count: len(h.checkouts)}
			d.Overlap = len(h.returns) == 0 || h.returns[0] > h.checkouts[1]
			rep.Double = append(rep.Double, d)
		}
		switch {
		case len(h.returns) > 0 && len(h.checkouts) == 0:
			rep.BadReturns = append(rep.BadReturns, host+": returned but never checked out")
		case len(h.returns) > len(h.checkouts):
			rep.BadReturns = append(rep.BadReturns, fmt.Sprintf("%s: returned %d times, checked out %d", host, len(h.returns), len(h.checkouts)))
		case len(h.returns) > 0 && h.returns[0] < h.checkouts[0]:
			rep.BadReturns = append(rep.BadReturns, host+": returned before its checkout")
		}
		if len(h.checkouts) > len(h.returns) {
			rep.Held = append(rep.Held, host)
		}
	}
	sort.Strings(rep.Held)
	sort.Strings(rep.BadReturns)
	sort.Slice(rep.Double, func(i, j int) bool { return rep.Double[i].Host < rep.Double[j].Host })
	return rep
}

func sortInt64(s []int64) { sort.Slice(s, func(i, j int) bool { return s[i] < s[j] }) }

// WriteText prints the report for people.
func (r RecordReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "records: %d events, %d checkouts of %d hostnames, %d returns, %d still held\n",
		r.Events, r.Checkouts, r.Hosts, r.Returns, len(r.Held))
	for _, d := range r.Double {
		fmt.Fprintf(w, "  DOUBLE HAND-OUT %s: checked out %d times, first %s, second %s, overlapping=%v\n",
			d.Host, d.Count, fmtNano(d.First), fmtNano(d.Second), d.Overlap)
	}
	for _, b := range r.BadReturns {
		fmt.Fprintf(w, "  BAD RETURN %s\n", b)
	}
}

func fmtNano(ns int64) string { return time.Unix(0, ns).UTC().Format("15:04:05.000000") }
