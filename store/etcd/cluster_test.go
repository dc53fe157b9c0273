package etcd_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/etcd"
	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
	"github.com/vmpooler/vmpooler/store/kv"
)

// keySet is what a follower knows of a bucket: the keys its events say
// are there.
type keySet struct {
	mu     sync.Mutex
	keys   map[string]bool
	resets int
}

func (s *keySet) fn(ev kv.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case ev.Reset:
		s.keys = map[string]bool{}
		s.resets++
	case ev.Deleted:
		delete(s.keys, string(ev.Key))
	default:
		s.keys[string(ev.Key)] = true
	}
}

// list returns the keys, sorted, and how many resets there were.
func (s *keySet) list() ([]string, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.keys {
		out = append(out, k)
	}
	slices.Sort(out)
	return out, s.resets
}

// waitKeys waits at most d until s holds want.
func (s *keySet) waitKeys(t *testing.T, d time.Duration, want ...string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got, _ = s.list(); slices.Equal(got, want) {
			return
		}
	}
	t.Fatalf("follower has %v after %s, want %v", got, d, want)
}

// eventually calls f until it succeeds or d has passed, and returns how
// long that took and f's last error.
func eventually(d time.Duration, f func() error) (time.Duration, error) {
	start := time.Now()
	for {
		err := f()
		if err == nil || time.Since(start) > d {
			return time.Since(start), err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func putKey(e kv.Engine, key string) func() error {
	return func() error {
		return e.Update(func(tx kv.Tx) error { return tx.Put(bkt, []byte(key), []byte("v")) })
	}
}

func getKey(e kv.Engine, key string) func() error {
	return func() error {
		return e.View(func(tx kv.Tx) error { tx.Get(bkt, []byte(key)); return nil })
	}
}

// TestCluster runs an engine on a cluster of three members: it keeps
// working with one member stopped (the leader, stopped and then killed),
// fails within its request timeout with two stopped, and works again once
// they are back, its follower too.
func TestCluster(t *testing.T) {
	c := etcdtest.StartCluster(t, 3)
	const timeout = 2 * time.Second
	e, err := etcd.Open(etcd.Config{Endpoints: c.Endpoints(), Prefix: "cluster", RequestTimeout: timeout, DialTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	put(t, e, bkt, "a", "1")
	if got := get(t, e, bkt, "a"); got != "1" {
		t.Fatalf("a = %q", got)
	}
	var follower keySet
	if err := e.Follow(ctx, bkt, follower.fn); err != nil {
		t.Fatal(err)
	}
	follower.waitKeys(t, 5*time.Second, "a")

	// One member down, the leader: Update and View go on, after an
	// election when the leader crashed.
	leader := func() int {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if l := c.Leader(); l >= 0 {
				return l
			}
		}
		t.Fatal("no leader")
		return -1
	}
	withoutLeader := func(how string, stop func(...int), key string, want ...string) int {
		t.Helper()
		lead := leader()
		start := time.Now()
		stop(lead)
		stopped := time.Since(start)
		elected := make(chan time.Duration, 1)
		go func() {
			for c.Leader() < 0 && time.Since(start) < 10*time.Second {
				time.Sleep(5 * time.Millisecond)
			}
			elected <- time.Since(start)
		}()
		d, err := eventually(10*time.Second, putKey(e, key))
		if err != nil {
			t.Fatalf("Update with the leader %s, for %s: %v", how, d, err)
		}
		t.Logf("leader (member %d) %s in %s; new leader (member %d) known %s after the start of the stop; first Update succeeded %s after the stop",
			lead, how, stopped.Round(time.Millisecond), c.Leader(), (<-elected).Round(time.Millisecond), d.Round(time.Millisecond))
		if got := get(t, e, bkt, key); got != "v" {
			t.Errorf("%s = %q", key, got)
		}
		follower.waitKeys(t, 10*time.Second, want...)
		_, resets := follower.list()
		t.Logf("the follower has started over %d times", resets-1)
		return lead
	}
	lead := withoutLeader("stopped", c.Stop, "b", "a", "b")
	c.Restart(lead)
	put(t, e, bkt, "c", "v")
	lead = withoutLeader("killed", c.Kill, "d", "a", "b", "c", "d")

	// Two down: no quorum. Requests fail within the request timeout.
	second := (lead + 1) % 3
	c.Stop(second)
	for name, f := range map[string]func() error{"Update": putKey(e, "lost"), "View": getKey(e, "a")} {
		start := time.Now()
		err := f()
		d := time.Since(start)
		t.Logf("%s without quorum failed in %s: %v", name, d.Round(time.Millisecond), err)
		if errs.ErrorCode(err) != errs.EUNAVAILABLE {
			t.Errorf("%s without quorum: %v; want EUNAVAILABLE", name, err)
		}
		if d > 3*timeout {
			t.Errorf("%s without quorum took %s; request timeout %s", name, d, timeout)
		}
	}

	// Both back: the engine recovers by itself, and so does its follower.
	start := time.Now()
	c.Restart(lead, second)
	restarted := time.Since(start)
	d, err := eventually(20*time.Second, putKey(e, "e"))
	if err != nil {
		t.Fatalf("Update %s after the restart: %v", d, err)
	}
	t.Logf("restart took %s; first Update after it succeeded %s later", restarted.Round(time.Millisecond), d.Round(time.Millisecond))
	// The Update that failed for want of a quorum may have been applied
	// once the quorum was back (its outcome is unknown).
	lost := get(t, e, bkt, "lost") != "<nil>"
	t.Logf("the Update without quorum was applied after all: %v", lost)
	want := []string{"a", "b", "c", "d", "e"}
	if lost {
		want = append(want, "lost")
	}
	follower.waitKeys(t, 20*time.Second, want...)
	sctx, scancel := context.WithTimeout(ctx, 10*time.Second)
	defer scancel()
	if err := e.Sync(sctx); err != nil {
		t.Errorf("Sync after the restart: %v", err)
	}
	_, resets := follower.list()
	t.Logf("the follower has started over %d times", resets-1)
}
