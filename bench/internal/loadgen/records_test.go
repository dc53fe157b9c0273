package loadgen

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestRecorderRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	r := NewRecorder(&buf, true)
	r.Record(KindCheckout, "a1", time.Unix(0, 100))
	r.Record(KindReturn, "a1", time.Unix(0, 200))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "checkout a1 100\nreturn a1 200\n"; got != want {
		t.Fatalf("file = %q, want %q", got, want)
	}
	events, err := ParseRecords(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Events(); len(got) != 2 || got[0] != events[0] || got[1] != events[1] {
		t.Fatalf("kept %v, parsed %v", got, events)
	}
}

func TestParseRecordsErrors(t *testing.T) {
	for _, in := range []string{"checkout a1\n", "lend a1 5\n", "return a1 x\n", "checkout a b 1\n"} {
		if _, err := ParseRecords(strings.NewReader(in)); err == nil {
			t.Errorf("ParseRecords(%q) gave no error", in)
		}
	}
	ev, err := ParseRecords(strings.NewReader("\ncheckout a 1\n\n"))
	if err != nil || len(ev) != 1 {
		t.Errorf("blank lines: got %v, %v", ev, err)
	}
}

func ev(kind, host string, at int64) Event { return Event{Kind: kind, Host: host, At: at} }

func TestCheck(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		rep := Check([]Event{
			ev(KindCheckout, "a", 1), ev(KindCheckout, "b", 2), ev(KindReturn, "a", 3), ev(KindCheckout, "c", 4),
			ev(KindReturn, "b", 5),
		})
		if !rep.OK() || rep.Checkouts != 3 || rep.Returns != 2 || rep.Hosts != 3 || len(rep.Held) != 1 || rep.Held[0] != "c" {
			t.Fatalf("got %+v", rep)
		}
	})
	t.Run("overlapping double hand-out", func(t *testing.T) {
		rep := Check([]Event{ev(KindCheckout, "a", 1), ev(KindCheckout, "a", 2), ev(KindReturn, "a", 3)})
		if rep.OK() || len(rep.Double) != 1 || !rep.Double[0].Overlap || rep.Double[0].Count != 2 {
			t.Fatalf("got %+v", rep)
		}
	})
	t.Run("reuse after return is a violation too", func(t *testing.T) {
		// Events out of time order, as concurrent writers may leave them.
		rep := Check([]Event{ev(KindCheckout, "a", 5), ev(KindReturn, "a", 2), ev(KindCheckout, "a", 1), ev(KindReturn, "a", 6)})
		if rep.OK() || len(rep.Double) != 1 || rep.Double[0].Overlap || rep.Double[0].First != 1 || rep.Double[0].Second != 5 {
			t.Fatalf("got %+v", rep)
		}
		if len(rep.BadReturns) != 0 || len(rep.Held) != 0 {
			t.Fatalf("got %+v", rep)
		}
	})
	t.Run("bad returns", func(t *testing.T) {
		rep := Check([]Event{
			ev(KindReturn, "x", 1),
			ev(KindCheckout, "y", 5), ev(KindReturn, "y", 4),
			ev(KindCheckout, "z", 1), ev(KindReturn, "z", 2), ev(KindReturn, "z", 3),
		})
		if rep.OK() || len(rep.BadReturns) != 3 {
			t.Fatalf("got %+v", rep)
		}
		var buf bytes.Buffer
		rep.WriteText(&buf)
		if !strings.Contains(buf.String(), "BAD RETURN x: returned but never checked out") {
			t.Errorf("text: %s", buf.String())
		}
	})
}
