package clocktest

import (
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestClock(t *testing.T) {
	t.Run("Stands", func(t *testing.T) {
		c := New(t0)
		if got, got2 := c.Now(), c.Now(); !got.Equal(t0) || !got2.Equal(t0) {
			t.Errorf("got %v, %v, want %v twice", got, got2, t0)
		}
	})
	t.Run("Advance", func(t *testing.T) {
		c := New(t0)
		c.Advance(90 * time.Minute)
		if got, want := c.Now(), t0.Add(90*time.Minute); !got.Equal(want) {
			t.Errorf("got %v, want %v", got, want)
		}
		c.Advance(-time.Hour)
		if got, want := c.Now(), t0.Add(30*time.Minute); !got.Equal(want) {
			t.Errorf("back: got %v, want %v", got, want)
		}
	})
	t.Run("Set", func(t *testing.T) {
		c := New(t0)
		want := time.Date(2015, 3, 11, 10, 0, 0, 0, time.UTC)
		c.Set(want)
		if got := c.Now(); !got.Equal(want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("Ticking", func(t *testing.T) {
		c := NewTicking(t0, time.Millisecond)
		for i := range 3 {
			if got, want := c.Now(), t0.Add(time.Duration(i)*time.Millisecond); !got.Equal(want) {
				t.Errorf("reading %d: got %v, want %v", i, got, want)
			}
		}
		c.Advance(time.Second)
		if got, want := c.Now(), t0.Add(time.Second+3*time.Millisecond); !got.Equal(want) {
			t.Errorf("after Advance: got %v, want %v", got, want)
		}
	})
}

// TestClockConcurrent: readings and moves from many goroutines at once
// (run with -race) are neither lost nor handed out twice.
func TestClockConcurrent(t *testing.T) {
	c := NewTicking(t0, time.Nanosecond)
	const workers, each = 8, 100
	seen := make(chan time.Time, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				seen <- c.Now()
			}
		})
	}
	wg.Wait()
	close(seen)
	distinct := map[time.Time]bool{}
	for tm := range seen {
		distinct[tm] = true
	}
	if len(distinct) != workers*each {
		t.Errorf("%d distinct readings of %d", len(distinct), workers*each)
	}

	c = New(t0)
	for range workers {
		wg.Go(func() {
			for range each {
				c.Advance(time.Second)
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), t0.Add(workers*each*time.Second); !got.Equal(want) {
		t.Errorf("after concurrent Advance: got %v, want %v", got, want)
	}
}
