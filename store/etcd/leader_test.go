package etcd_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/etcd"
	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
	"github.com/vmpooler/vmpooler/store/kv"
)

var bucket = []byte("b")

// TestElectionAndFence: one replica leads at a time; a resign hands over
// at once; the old leader's fenced writes fail and write nothing, while
// the new leader's land.
func TestElectionAndFence(t *testing.T) {
	a := etcdtest.Engine(t, "election")
	b := etcd.NewEngineSharing(a) // a second replica on the same prefix
	defer b.Close()
	ctx := t.Context()
	ta, err := a.Campaign(ctx, "a", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if name, _ := b.Leader(ctx); name != "a" {
		t.Fatalf("leader %q, want a", name)
	}
	won := make(chan *etcd.Term, 1)
	go func() {
		tb, err := b.Campaign(ctx, "b", 2*time.Second)
		if err != nil {
			t.Error(err)
		}
		won <- tb
	}()
	select {
	case <-won:
		t.Fatal("b leads while a does")
	case <-time.After(300 * time.Millisecond):
	}
	put := func(e kv.Engine, v string) error {
		return e.Update(func(tx kv.Tx) error { return tx.Put(bucket, []byte("k"), []byte(v)) })
	}
	oldEngine := ta.Engine()
	if err := put(oldEngine, "from a"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ta.Resign()
	var tb *etcd.Term
	select {
	case tb = <-won:
	case <-time.After(5 * time.Second):
		t.Fatal("b did not lead after a resigned")
	}
	t.Logf("b led %v after a resigned", time.Since(start).Round(time.Millisecond))
	defer tb.Resign()
	if err := put(oldEngine, "late from a"); errs.ErrorCode(err) != errs.EUNAVAILABLE || !etcd.IsNotLeader(err) {
		t.Errorf("a fenced write after its term: %v, want not-leader EUNAVAILABLE", err)
	}
	if err := put(tb.Engine(), "from b"); err != nil {
		t.Fatal(err)
	}
	var got string
	b.View(func(tx kv.Tx) error { got = string(tx.Get(bucket, []byte("k"))); return nil })
	if got != "from b" {
		t.Errorf("value %q, want b's", got)
	}
	select {
	case <-ta.Done():
	default:
		t.Error("a's term is not done after Resign")
	}
}

// TestStaleLeaseEndsTheTerm: with etcd gone, the leader's term ends (Fresh
// false, Done closed) within 2/3 of the lease TTL and a little, before
// etcd could let another replica lead.
func TestStaleLeaseEndsTheTerm(t *testing.T) {
	srv, e := etcdtest.StartEngine(t, etcd.Config{Prefix: "stale", RequestTimeout: time.Second})
	term, err := e.Campaign(t.Context(), "a", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !term.Fresh() {
		t.Fatal("a new term is not fresh")
	}
	srv.Stop()
	start := time.Now()
	select {
	case <-term.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the term did not end with etcd gone")
	}
	took := time.Since(start)
	if term.Fresh() {
		t.Error("Fresh after the term ended")
	}
	if took > 3*time.Second {
		t.Errorf("the term ended %v after etcd went: not before the 3 s lease could expire", took)
	}
	t.Logf("term ended %v after etcd went (lease 3 s)", took.Round(time.Millisecond))
}

// TestKicksAndLeaderWatch: a kick from any replica reaches the watcher,
// and the leader's name follows the election.
func TestKicksAndLeaderWatch(t *testing.T) {
	a := etcdtest.Engine(t, "kicks")
	b := etcd.NewEngineSharing(a)
	defer b.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var kicks atomic.Int64
	go a.WatchKicks(ctx, func() { kicks.Add(1) })
	names := make(chan string, 16)
	go a.WatchLeader(ctx, func(n string) { names <- n })
	if n := <-names; n != "" {
		t.Errorf("leader before any campaign: %q", n)
	}
	time.Sleep(100 * time.Millisecond) // the kick watch is set up
	if err := b.Kick("b"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for kicks.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if kicks.Load() == 0 {
		t.Error("the kick did not arrive")
	}
	term, err := b.Campaign(ctx, "b", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer term.Resign()
	for n := range names {
		if n == "b" {
			break
		}
	}
}

// The leader's published pool health reaches the other replicas and goes
// with its term.
func TestLeaderHealthGoesWithTheTerm(t *testing.T) {
	a := etcdtest.Engine(t, "health")
	b := etcd.NewEngineSharing(a)
	defer b.Close()
	ctx := t.Context()
	if v, err := b.LeaderHealth(ctx); err != nil || v != nil {
		t.Fatalf("before any term: %q, %v; want nothing", v, err)
	}
	term, err := a.Campaign(ctx, "a", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := term.PublishHealth([]byte(`{"p":{}}`)); err != nil {
		t.Fatal(err)
	}
	if v, err := b.LeaderHealth(ctx); err != nil || string(v) != `{"p":{}}` {
		t.Errorf("after publishing: %q, %v", v, err)
	}
	term.Resign()
	if v, err := b.LeaderHealth(ctx); err != nil || v != nil {
		t.Errorf("after the term: %q, %v; want nothing", v, err)
	}
}
