package etcd_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/etcd"
	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
	"github.com/vmpooler/vmpooler/store/kv"
)

func TestMain(m *testing.M) { os.Exit(etcdtest.Run(m)) }

var bkt = []byte("things")

// put writes key=value pairs in one Update.
func put(t *testing.T, e kv.Engine, bucket []byte, kvs ...string) {
	t.Helper()
	if err := e.Update(func(tx kv.Tx) error {
		for i := 0; i < len(kvs); i += 2 {
			if err := tx.Put(bucket, []byte(kvs[i]), []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// get reads one key in a View ("<nil>" when missing).
func get(t *testing.T, e kv.Engine, bucket []byte, key string) string {
	t.Helper()
	var v []byte
	if err := e.View(func(tx kv.Tx) error { v = tx.Get(bucket, []byte(key)); return nil }); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		return "<nil>"
	}
	return string(v)
}

// scan returns "k=v" of a Scan, stopping after limit keys (0: all).
func scan(tx kv.Tx, bucket []byte, prefix, from string, limit int) ([]string, error) {
	var out []string
	var f []byte
	if from != "" {
		f = []byte(from)
	}
	err := tx.Scan(bucket, []byte(prefix), f, func(k, v []byte) (bool, error) {
		out = append(out, string(k)+"="+string(v))
		return limit == 0 || len(out) < limit, nil
	})
	return out, err
}

func TestReadYourWrites(t *testing.T) {
	e := etcdtest.Engine(t, "")
	put(t, e, bkt, "a", "1", "b", "2", "empty", "")
	if err := e.Update(func(tx kv.Tx) error {
		if v := tx.Get(bkt, []byte("a")); string(v) != "1" {
			return fmt.Errorf("a before put = %q", v)
		}
		if err := tx.Put(bkt, []byte("a"), []byte("10")); err != nil {
			return err
		}
		if v := tx.Get(bkt, []byte("a")); string(v) != "10" {
			return fmt.Errorf("a after put = %q, want its own write", v)
		}
		if err := tx.Delete(bkt, []byte("b")); err != nil {
			return err
		}
		if v := tx.Get(bkt, []byte("b")); v != nil {
			return fmt.Errorf("b after delete = %q, want nil", v)
		}
		if err := tx.Put(bkt, []byte("c"), []byte("3")); err != nil {
			return err
		}
		if v := tx.Get(bkt, []byte("c")); string(v) != "3" {
			return fmt.Errorf("new c = %q", v)
		}
		if v := tx.Get(bkt, []byte("empty")); v == nil || len(v) != 0 {
			return fmt.Errorf("empty value = %#v, want a non-nil empty slice", v)
		}
		if v := tx.Get(bkt, []byte("missing")); v != nil {
			return fmt.Errorf("missing = %#v, want nil", v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"a": "10", "b": "<nil>", "c": "3", "empty": ""} {
		if got := get(t, e, bkt, k); got != want {
			t.Errorf("after commit %s = %q, want %q", k, got, want)
		}
	}
	// Buckets are separate key spaces.
	if got := get(t, e, []byte("other"), "a"); got != "<nil>" {
		t.Errorf("a of another bucket = %q", got)
	}
}

func TestScanOverlay(t *testing.T) {
	e := etcdtest.Engine(t, "")
	etcd.SetPageSize(e, 3) // several pages
	var kvs []string
	for i := 1; i <= 19; i += 2 {
		kvs = append(kvs, fmt.Sprintf("a%02d", i), "db")
	}
	kvs = append(kvs, "b01", "db", "Z", "db")
	put(t, e, bkt, kvs...)
	put(t, e, []byte("otherbucket"), "a02", "no")

	if err := e.Update(func(tx kv.Tx) error {
		for _, w := range []struct{ k, v string }{{"a02", "tx"}, {"a03", "tx"}, {"a20", "tx"}, {"a00", "tx"}, {"b00", "tx"}} {
			if err := tx.Put(bkt, []byte(w.k), []byte(w.v)); err != nil {
				return err
			}
		}
		for _, k := range []string{"a05", "a19", "a04"} { // a04: not there
			if err := tx.Delete(bkt, []byte(k)); err != nil {
				return err
			}
		}
		got, err := scan(tx, bkt, "a", "", 0)
		if err != nil {
			return err
		}
		want := []string{"a00=tx", "a01=db", "a02=tx", "a03=tx", "a07=db", "a09=db", "a11=db",
			"a13=db", "a15=db", "a17=db", "a20=tx"}
		if !slices.Equal(got, want) {
			t.Errorf("scan a:\n got %v\nwant %v", got, want)
		}
		got, err = scan(tx, bkt, "a", "a06", 0)
		if err != nil {
			return err
		}
		if want := []string{"a07=db", "a09=db", "a11=db", "a13=db", "a15=db", "a17=db", "a20=tx"}; !slices.Equal(got, want) {
			t.Errorf("scan a from a06:\n got %v\nwant %v", got, want)
		}
		got, err = scan(tx, bkt, "a", "", 4)
		if err != nil {
			return err
		}
		if want := []string{"a00=tx", "a01=db", "a02=tx", "a03=tx"}; !slices.Equal(got, want) {
			t.Errorf("scan a stopping after 4:\n got %v\nwant %v", got, want)
		}
		got, err = scan(tx, bkt, "", "", 0)
		if err != nil {
			return err
		}
		if len(got) != 14 || got[0] != "Z=db" || got[13] != "b01=db" || got[12] != "b00=tx" {
			t.Errorf("scan all = %v", got)
		}
		// from before the prefix starts at the prefix; after it, nothing.
		got, err = scan(tx, bkt, "b", "a", 0)
		if err != nil {
			return err
		}
		if want := []string{"b00=tx", "b01=db"}; !slices.Equal(got, want) {
			t.Errorf("scan b from a = %v, want %v", got, want)
		}
		if got, err = scan(tx, bkt, "b", "c", 0); err != nil || len(got) != 0 {
			t.Errorf("scan b from c = %v, %v; want nothing", got, err)
		}
		// An error of fn is Scan's.
		boom := errors.New("boom")
		if err := tx.Scan(bkt, nil, nil, func(k, v []byte) (bool, error) { return true, boom }); err != boom {
			t.Errorf("Scan returned %v, want fn's error", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// An early stop fetches only the pages it needs.
	etcd.SetPageSize(e, 2)
	var keys []string
	for i := range 100 {
		keys = append(keys, fmt.Sprintf("big%03d", i), "v")
	}
	put(t, e, bkt, keys...)
	before, _ := etcd.Requests(e)
	if err := e.View(func(tx kv.Tx) error {
		got, err := scan(tx, bkt, "big", "", 3)
		if len(got) != 3 || got[2] != "big002=v" {
			t.Errorf("scan big stopping after 3 = %v", got)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if after, _ := etcd.Requests(e); after-before != 2 {
		t.Errorf("a scan stopping after 3 keys with pages of 2 made %d range requests, want 2", after-before)
	}
	before, _ = etcd.Requests(e)
	if err := e.View(func(tx kv.Tx) error {
		got, err := scan(tx, bkt, "big", "", 0)
		if len(got) != 100 || got[99] != "big099=v" {
			t.Errorf("scan big = %d keys, last %v", len(got), got[len(got)-1:])
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if after, _ := etcd.Requests(e); after-before < 50 {
		t.Errorf("a scan of 100 keys with pages of 2 made %d range requests", after-before)
	}
}

func TestReadOnlyUpdateSendsNoTxn(t *testing.T) {
	e := etcdtest.Engine(t, "")
	put(t, e, bkt, "a", "1")
	_, before := etcd.Requests(e)
	if err := e.Update(func(tx kv.Tx) error {
		tx.Get(bkt, []byte("a"))
		_, err := scan(tx, bkt, "", "", 0)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, after := etcd.Requests(e); after != before {
		t.Errorf("a read-only Update sent %d Txns", after-before)
	}
}

func TestConcurrentIncrements(t *testing.T) {
	// The 1280 commits are serial; an Update may wait for many of them.
	e := etcdtest.EngineConfig(t, etcd.Config{RequestTimeout: 60 * time.Second})
	const workers, each = 64, 20
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		maxAttempts int
		maxTime     time.Duration
	)
	errc := make(chan error, workers)
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for range each {
				n, t0 := 0, time.Now()
				err := e.Update(func(tx kv.Tx) error {
					n++
					c, _ := strconv.Atoi(string(tx.Get(bkt, []byte("counter"))))
					return tx.Put(bkt, []byte("counter"), []byte(strconv.Itoa(c+1)))
				})
				if err != nil {
					errc <- err
					return
				}
				mu.Lock()
				maxAttempts, maxTime = max(maxAttempts, n), max(maxTime, time.Since(t0))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errc)
	t.Logf("%d increments in %s; the slowest Update took %d attempts, %s",
		workers*each, time.Since(start).Round(time.Millisecond), maxAttempts, maxTime.Round(time.Millisecond))
	for err := range errc {
		t.Error(err)
	}
	if got := get(t, e, bkt, "counter"); got != strconv.Itoa(workers*each) {
		t.Errorf("counter = %s, want %d", got, workers*each)
	}
}

func TestKeepsConflicting(t *testing.T) {
	const timeout = 200 * time.Millisecond
	e := etcdtest.EngineConfig(t, etcd.Config{RequestTimeout: timeout})
	n := 0
	start := time.Now()
	err := e.Update(func(tx kv.Tx) error {
		n++
		tx.Get(bkt, []byte("hot"))
		put(t, e, bkt, "hot", strconv.Itoa(n)) // someone else, every time
		return tx.Put(bkt, []byte("hot"), []byte("mine"))
	})
	if errs.ErrorCode(err) != errs.EUNAVAILABLE || !strings.Contains(err.Error(), "kept conflicting") {
		t.Errorf("Update that always conflicts: %v", err)
	}
	if d := time.Since(start); n < 3 || d < timeout || d > timeout+time.Second {
		t.Errorf("gave up after %d attempts in %s, want >= 3 and about %s", n, d, timeout)
	}
	if got := get(t, e, bkt, "hot"); got != strconv.Itoa(n) {
		t.Errorf("hot = %s, want the other writer's last %d", got, n)
	}
}

// attempts runs fn in Update, calling between (once, in the first attempt)
// after fn's reads and before its commit, and returns how many attempts
// fn took.
func attempts(t *testing.T, e kv.Engine, fn func(tx kv.Tx) error, between func()) int {
	t.Helper()
	n := 0
	if err := e.Update(func(tx kv.Tx) error {
		n++
		if err := fn(tx); err != nil {
			return err
		}
		if n == 1 {
			between()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestScanConflicts(t *testing.T) {
	e := etcdtest.Engine(t, "")
	put(t, e, bkt, "p1", "x", "p3", "x", "p5", "x", "q1", "x")
	other := etcdtest.Engine(t, "") // another prefix: never conflicts
	countP := func(limit int) func(tx kv.Tx) error {
		return func(tx kv.Tx) error {
			got, err := scan(tx, bkt, "p", "", limit)
			if err != nil {
				return err
			}
			return tx.Put(bkt, []byte("count"), []byte(strconv.Itoa(len(got))))
		}
	}
	cases := []struct {
		name     string
		limit    int // 0: the scan runs out
		between  func()
		attempts int
	}{
		{"insert into an exhausted scan", 0, func() { put(t, e, bkt, "p4", "x") }, 2},
		{"insert past the end of the prefix", 0, func() { put(t, e, bkt, "q0", "x") }, 1},
		{"change of a scanned key", 0, func() { put(t, e, bkt, "p3", "changed") }, 2},
		{"insert before where a scan stopped", 2, func() { put(t, e, bkt, "p2", "x") }, 2},
		{"insert after where a scan stopped", 2, func() { put(t, e, bkt, "p6", "x") }, 1},
		{"change after where a scan stopped", 1, func() { put(t, e, bkt, "p5", "changed") }, 1},
		{"write to another prefix", 0, func() { put(t, other, bkt, "p2", "x") }, 1},
		{"write to another bucket", 0, func() { put(t, e, []byte("bucket2"), "p2", "x") }, 1},
		{"change of the last key a stopped scan handed out", 2, func() { put(t, e, bkt, "p2", "changed") }, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if n := attempts(t, e, countP(c.limit), c.between); n != c.attempts {
				t.Errorf("took %d attempts, want %d", n, c.attempts)
			}
		})
	}

	// A key a Scan handed out and the transaction writes: its deletion is
	// a conflict (a range compare alone would not see it).
	put(t, e, bkt, "r1", "x", "r2", "x")
	markFirst := func(tx kv.Tx) error {
		var first []byte
		if err := tx.Scan(bkt, []byte("r"), nil, func(k, v []byte) (bool, error) {
			first = append([]byte(nil), k...)
			return false, nil
		}); err != nil || first == nil {
			return fmt.Errorf("scan: %v, %q", err, first)
		}
		return tx.Put(bkt, first, []byte("mine"))
	}
	if n := attempts(t, e, markFirst, func() {
		if err := e.Update(func(tx kv.Tx) error { return tx.Delete(bkt, []byte("r1")) }); err != nil {
			t.Fatal(err)
		}
	}); n != 2 {
		t.Errorf("delete of a scanned key the transaction wrote: %d attempts, want 2", n)
	}
	if got, got1 := get(t, e, bkt, "r2"), get(t, e, bkt, "r1"); got != "mine" || got1 != "<nil>" {
		t.Errorf("after the retry r1 = %s, r2 = %s; want the retry to mark r2", got1, got)
	}
	// ...but the deletion of a key it only saw is not (documented).
	put(t, e, bkt, "s1", "x", "s2", "x")
	if n := attempts(t, e, countP(0), func() {
		if err := e.Update(func(tx kv.Tx) error { return tx.Delete(bkt, []byte("s1")) }); err != nil {
			t.Fatal(err)
		}
	}); n != 1 {
		t.Errorf("delete of a key only scanned: %d attempts, want 1", n)
	}
	// A point read that saw a key missing conflicts with its creation.
	if n := attempts(t, e, func(tx kv.Tx) error {
		if tx.Get(bkt, []byte("new")) != nil {
			return nil
		}
		return tx.Put(bkt, []byte("created-new"), []byte("y"))
	}, func() { put(t, e, bkt, "new", "x") }); n != 2 {
		t.Errorf("creation of a key read missing: %d attempts, want 2", n)
	}
}

func TestFnErrorWritesNothing(t *testing.T) {
	e := etcdtest.Engine(t, "")
	put(t, e, bkt, "a", "1")
	boom := errors.New("boom")
	err := e.Update(func(tx kv.Tx) error {
		tx.Put(bkt, []byte("a"), []byte("2"))
		tx.Put(bkt, []byte("b"), []byte("2"))
		tx.Delete(bkt, []byte("a"))
		return boom
	})
	if err != boom {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	if a, b := get(t, e, bkt, "a"), get(t, e, bkt, "b"); a != "1" || b != "<nil>" {
		t.Errorf("after a failed Update a = %s, b = %s", a, b)
	}
}

func TestNextSequence(t *testing.T) {
	e := etcdtest.Engine(t, "")
	const workers, each = 16, 10
	var (
		mu   sync.Mutex
		seen = map[uint64]bool{}
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for range each {
				var n uint64
				if err := e.Update(func(tx kv.Tx) error {
					var err error
					n, err = tx.NextSequence([]byte("jobs"))
					if err != nil {
						return err
					}
					return tx.Put([]byte("jobs"), []byte(strconv.FormatUint(n, 10)), []byte("job"))
				}); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[n] {
					t.Errorf("sequence %d handed out twice", n)
				}
				seen[n] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for i := uint64(1); i <= workers*each; i++ {
		if !seen[i] {
			t.Errorf("sequence %d never handed out", i)
		}
	}
	// Two in one transaction, and each bucket has its own sequence.
	if err := e.Update(func(tx kv.Tx) error {
		a, _ := tx.NextSequence([]byte("jobs"))
		b, _ := tx.NextSequence([]byte("jobs"))
		c, err := tx.NextSequence([]byte("other"))
		if a != workers*each+1 || b != a+1 || c != 1 {
			t.Errorf("sequences %d %d %d", a, b, c)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

func TestViewIsOneSnapshot(t *testing.T) {
	e := etcdtest.Engine(t, "")
	put(t, e, bkt, "a", "1", "b", "1")
	if err := e.View(func(tx kv.Tx) error {
		a := string(tx.Get(bkt, []byte("a")))
		put(t, e, bkt, "a", "2", "b", "2", "c", "2")
		b := string(tx.Get(bkt, []byte("b")))
		all, err := scan(tx, bkt, "", "", 0)
		if a != "1" || b != "1" || !slices.Equal(all, []string{"a=1", "b=1"}) {
			t.Errorf("View saw a=%s b=%s scan %v, want the state at its first read", a, b, all)
		}
		if err := tx.Put(bkt, []byte("x"), []byte("y")); err == nil {
			t.Error("Put in a View: no error")
		}
		if err := tx.Delete(bkt, []byte("a")); err == nil {
			t.Error("Delete in a View: no error")
		}
		if _, err := tx.NextSequence(bkt); err == nil {
			t.Error("NextSequence in a View: no error")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, e, bkt, "a"); got != "2" {
		t.Errorf("a = %s after the View", got)
	}
}

func TestBadBucket(t *testing.T) {
	e := etcdtest.Engine(t, "")
	for _, b := range []string{"", "seq", "a/b"} {
		err := e.Update(func(tx kv.Tx) error { return tx.Put([]byte(b), []byte("k"), []byte("v")) })
		if err == nil {
			t.Errorf("Put to bucket %q: no error", b)
		}
		err = e.View(func(tx kv.Tx) error { tx.Get([]byte(b), []byte("k")); return nil })
		if err == nil {
			t.Errorf("Get of bucket %q: no error", b)
		}
	}
}

func TestCompactedRevision(t *testing.T) {
	_, e := etcdtest.StartEngine(t, etcd.Config{}) // its own server: compaction would disturb others
	put(t, e, bkt, "a", "1", "b", "1")
	compactNow := func() {
		put(t, e, bkt, "a", "2")
		resp, err := e.Client().Get(context.Background(), "x")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Client().Compact(context.Background(), resp.Header.Revision); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	if err := e.Update(func(tx kv.Tx) error {
		n++
		a := tx.Get(bkt, []byte("a"))
		if n == 1 {
			compactNow()
		}
		b := tx.Get(bkt, []byte("b")) // at a compacted revision in attempt 1
		return tx.Put(bkt, []byte("c"), append(a, b...))
	}); err != nil {
		t.Fatal(err)
	}
	if got := get(t, e, bkt, "c"); n != 2 || got != "21" {
		t.Errorf("after a compaction mid-Update: %d attempts, c = %s; want 2, 21", n, got)
	}
	// A View does not run fn twice: it fails.
	n = 0
	err := e.View(func(tx kv.Tx) error {
		n++
		tx.Get(bkt, []byte("a"))
		compactNow()
		tx.Get(bkt, []byte("b"))
		return nil
	})
	if errs.ErrorCode(err) != errs.EUNAVAILABLE || n != 1 {
		t.Errorf("View over a compaction: %v after %d runs; want EUNAVAILABLE after 1", err, n)
	}
}

func TestTooManyOps(t *testing.T) {
	e := etcdtest.Engine(t, "")
	writeN := func(e kv.Engine, n int) error {
		return e.Update(func(tx kv.Tx) error {
			for i := range n {
				if err := tx.Put(bkt, fmt.Appendf(nil, "k%03d", i), []byte("v")); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := writeN(e, etcd.DefaultMaxTxnOps); err != nil {
		t.Fatalf("%d writes: %v", etcd.DefaultMaxTxnOps, err)
	}
	err := writeN(e, etcd.DefaultMaxTxnOps+1)
	if errs.ErrorCode(err) != errs.EINVALID || !strings.Contains(err.Error(), "needs 129 etcd operations") ||
		!strings.Contains(err.Error(), "max_txn_ops is 128") {
		t.Errorf("129 writes: %v; want EINVALID naming 129 and 128", err)
	}
	// Compares count too: 100 reads and 100 writes are fine, 129 reads are not.
	err = e.Update(func(tx kv.Tx) error {
		for i := range 129 {
			tx.Get(bkt, fmt.Appendf(nil, "k%03d", i))
		}
		return tx.Put(bkt, []byte("x"), []byte("y"))
	})
	if errs.ErrorCode(err) != errs.EINVALID || !strings.Contains(err.Error(), "129 compares") {
		t.Errorf("129 reads and a write: %v; want EINVALID", err)
	}
	// A server whose limit is lower than the engine's: still EINVALID.
	_, e2 := etcdtest.StartEngine(t, etcd.Config{}, etcdtest.MaxTxnOps(8))
	if err := writeN(e2, 9); errs.ErrorCode(err) != errs.EINVALID || !strings.Contains(err.Error(), "max_txn_ops") {
		t.Errorf("9 writes on a server allowing 8: %v; want EINVALID", err)
	}
	if err := e2.Update(func(tx kv.Tx) error { return nil }); err != nil {
		t.Error(err)
	}
	if err := writeN(e2, 8); err != nil {
		t.Errorf("8 writes on a server allowing 8: %v", err)
	}
}

func TestUnreachable(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, e := etcdtest.StartEngine(t, etcd.Config{RequestTimeout: timeout, DialTimeout: timeout})
	put(t, e, bkt, "a", "1")
	s.Stop()

	timed := func(name string, f func() error) error {
		t.Helper()
		start := time.Now()
		err := f()
		if d := time.Since(start); d > 4*timeout {
			t.Errorf("%s took %s with a request timeout of %s", name, d, timeout)
		}
		// The client is told the database did not answer; only the log
		// (Error) says where etcd is.
		if msg := errs.ErrorMessage(err); errs.ErrorCode(err) != errs.EUNAVAILABLE ||
			!strings.Contains(msg, "the database (etcd)") || strings.Contains(msg, s.Endpoint) || !strings.Contains(err.Error(), s.Endpoint) {
			t.Errorf("%s: %q (message %q); want EUNAVAILABLE, the message naming the database, the cause its endpoint", name, err, msg)
		}
		return err
	}
	timed("Update", func() error { return e.Update(func(tx kv.Tx) error { return tx.Put(bkt, []byte("b"), []byte("x")) }) })
	timed("View", func() error { return e.View(func(tx kv.Tx) error { tx.Get(bkt, []byte("a")); return nil }) })
	// A failed read wins over what fn made of it.
	timed("Update whose fn fails after a failed read", func() error {
		return e.Update(func(tx kv.Tx) error {
			if tx.Get(bkt, []byte("a")) == nil {
				return errors.New("a is missing")
			}
			return nil
		})
	})
	timed("Scan", func() error {
		return e.View(func(tx kv.Tx) error {
			return tx.Scan(bkt, nil, nil, func(k, v []byte) (bool, error) { return true, nil })
		})
	})
	timed("Follow", func() error {
		return e.Follow(t.Context(), bkt, func(kv.Event) {})
	})

	// Open of an endpoint where nothing listens fails, naming it.
	start := time.Now()
	_, err := etcd.Open(etcd.Config{Endpoints: s.Endpoints(), RequestTimeout: timeout, DialTimeout: timeout})
	if errs.ErrorCode(err) != errs.EUNAVAILABLE || !strings.Contains(err.Error(), s.Endpoint) {
		t.Errorf("Open of a stopped etcd: %v; want EUNAVAILABLE naming %s", err, s.Endpoint)
	}
	if d := time.Since(start); d > 4*timeout {
		t.Errorf("Open of a stopped etcd took %s", d)
	}
	if _, err := etcd.Open(etcd.Config{}); errs.ErrorCode(err) != errs.EINVALID {
		t.Errorf("Open without endpoints: %v", err)
	}
}

// recorder collects the events of a Follow.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) fn(ev kv.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case ev.Reset:
		r.events = append(r.events, "reset")
	case ev.Snapshot:
		r.events = append(r.events, "snap "+string(ev.Key))
	case ev.Deleted:
		r.events = append(r.events, "del "+string(ev.Key))
	default:
		r.events = append(r.events, "new "+string(ev.Key))
	}
}

// take returns the events so far and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev := r.events
	r.events = nil
	return ev
}

// synced waits until the followers of e have seen e's commits (Sync) and
// returns the events r got since its last take.
func (r *recorder) synced(t *testing.T, ctx context.Context, e *etcd.Engine) []string {
	t.Helper()
	if err := e.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	return r.take()
}

func TestFollowAndSync(t *testing.T) {
	e := etcdtest.Engine(t, "")
	etcd.SetPageSize(e, 2)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := e.Sync(ctx); err != nil { // nothing followed: at once
		t.Fatal(err)
	}
	put(t, e, bkt, "a", "1", "b", "1", "c", "1", "d", "1", "e", "1")
	put(t, e, []byte("thingsX"), "a", "no") // a bucket whose name extends bkt's

	var r recorder
	// gRPC metadata of the caller's context must not split the watch
	// from the progress requests of Sync.
	fctx := metadata.AppendToOutgoingContext(ctx, "x-caller", "1")
	if err := e.Follow(fctx, bkt, r.fn); err != nil {
		t.Fatal(err)
	}
	want := []string{"reset", "snap a", "snap b", "snap c", "snap d", "snap e"}
	if got := r.take(); !slices.Equal(got, want) {
		t.Fatalf("snapshot events %v, want %v", got, want)
	}

	if err := e.Update(func(tx kv.Tx) error {
		tx.Put(bkt, []byte("f"), []byte("new"))
		tx.Put(bkt, []byte("a"), []byte("overwritten"))
		return tx.Delete(bkt, []byte("b"))
	}); err != nil {
		t.Fatal(err)
	}
	put(t, e, bkt, "c", "again") // an overwrite alone: no event
	put(t, e, []byte("thingsX"), "z", "no")
	if got, want := r.synced(t, ctx, e), []string{"del b", "new f"}; !slices.Equal(got, want) {
		t.Errorf("live events %v, want %v", got, want)
	}

	// A commit outside the followed bucket only: Sync still returns.
	for i := range 3 {
		put(t, e, []byte("elsewhere"), "k", strconv.Itoa(i))
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := e.Sync(sctx)
		cancel()
		if err != nil {
			t.Fatalf("Sync after a commit outside the followed bucket: %v", err)
		}
	}
	if got := r.take(); len(got) != 0 {
		t.Errorf("events of other buckets: %v", got)
	}

	// Another process's commits arrive too (Sync covers only ours).
	other, err := etcd.Open(etcd.Config{Endpoints: e.Client().Endpoints(), Prefix: e.Prefix()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	put(t, other, bkt, "g", "1")
	deadline := time.Now().Add(5 * time.Second)
	var got []string
	for len(got) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
		got = r.take()
	}
	if !slices.Equal(got, []string{"new g"}) {
		t.Errorf("events of another process's commit: %v", got)
	}

	// The follower ends with its context; Sync then has nothing to wait for.
	fctx, fcancel := context.WithCancel(ctx)
	var r2 recorder
	if err := e.Follow(fctx, []byte("elsewhere"), r2.fn); err != nil {
		t.Fatal(err)
	}
	if got := r2.take(); !slices.Equal(got, []string{"reset", "snap k"}) {
		t.Errorf("second follower's snapshot: %v", got)
	}
	fcancel()
	put(t, e, bkt, "h", "1")
	if got := r.synced(t, ctx, e); !slices.Equal(got, []string{"new h"}) {
		t.Errorf("events after the second follower ended: %v", got)
	}
}

func TestFollowStartsOverAfterCompaction(t *testing.T) {
	_, e := etcdtest.StartEngine(t, etcd.Config{}) // its own server: compaction would disturb others
	put(t, e, bkt, "a", "1")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	// Between the first snapshot and its watch, b is created and the
	// revisions the watch would start from are compacted away: etcd
	// cancels the watch, and the follower starts over.
	etcd.SetAfterSnapshot(e, func(n int) {
		if n != 1 {
			return
		}
		put(t, e, bkt, "b", "1")
		put(t, e, []byte("elsewhere"), "x", "1") // so that b's revision goes
		resp, err := e.Client().Get(ctx, "x")
		if err == nil {
			_, err = e.Client().Compact(ctx, resp.Header.Revision)
		}
		if err != nil {
			t.Error(err)
		}
	})
	var r recorder
	if err := e.Follow(ctx, bkt, r.fn); err != nil {
		t.Fatal(err)
	}
	want := []string{"reset", "snap a", "reset", "snap a", "snap b"}
	var got []string
	for deadline := time.Now().Add(10 * time.Second); len(got) < len(want) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		got = append(got, r.take()...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("events %v, want %v", got, want)
	}
	put(t, e, bkt, "c", "1")
	if got := r.synced(t, ctx, e); !slices.Equal(got, []string{"new c"}) {
		t.Errorf("after starting over: %v", got)
	}
}

func TestEngineClientAndPrefix(t *testing.T) {
	e := etcdtest.Engine(t, "named")
	if !strings.HasPrefix(e.Prefix(), "test/named-") || !strings.HasSuffix(e.Prefix(), "/") {
		t.Errorf("Prefix() = %q", e.Prefix())
	}
	put(t, e, bkt, "k\x00\xff", "v")
	resp, err := e.Client().Get(context.Background(), e.Prefix(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Key) != e.Prefix()+"things/k\x00\xff" {
		t.Errorf("keys under the prefix: %v", resp.Kvs)
	}
	if err := e.Update(func(tx kv.Tx) error { _, err := tx.NextSequence(bkt); return err }); err != nil {
		t.Fatal(err)
	}
	resp, err = e.Client().Get(context.Background(), e.Prefix()+"seq/things")
	if err != nil || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "1" {
		t.Errorf("sequence key: %v, %v", resp, err)
	}
}
