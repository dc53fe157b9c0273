// Package clocktest is the settable clock the tests of every package share:
// pass a Clock's Now wherever code takes a Now func() time.Time (the store,
// the manager, the service, auth) and move time with Advance or Set.
//
// It imports nothing of the pooler's, so that the store's own internal
// tests can use it as well as the tests of the packages above the store.
package clocktest

import (
	"sync"
	"time"
)

// Clock is a settable time source for tests. Its methods are safe for
// concurrent use: the manager's workers and the API's handlers read it while
// the test moves it.
type Clock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

// New returns a clock that stands at t until it is moved.
func New(t time.Time) *Clock {
	return &Clock{now: t}
}

// NewTicking returns a clock at t that moves on by step after every
// reading, so that each reading (each store transaction) gets its own,
// ordered time.
func NewTicking(t time.Time, step time.Duration) *Clock {
	return &Clock{now: t, step: step}
}

// Now returns the clock's time (then moves it on by its step, if ticking).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.now
	c.now = c.now.Add(c.step)
	return t
}

// Advance moves the clock on by d (back, if d is negative).
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set puts the clock at t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
