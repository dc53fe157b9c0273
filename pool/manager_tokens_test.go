package pool

import (
	"sync/atomic"
	"testing"
)

// The manager runs the token purge with its other purges: once at the
// first pass, then every PurgeInterval.
func TestManagerPurgesTokens(t *testing.T) {
	e := mustManager(t, nil, mgrTestPool("a", 0))
	var calls atomic.Int32
	e.m.PurgeTokens = func() (int, error) { calls.Add(1); return 0, nil }
	e.pass(t)
	e.pass(t)
	if n := calls.Load(); n != 1 {
		t.Errorf("PurgeTokens ran %d times in two passes within PurgeInterval, want 1", n)
	}
}
