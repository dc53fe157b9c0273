package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// newTestClock returns a clock at 2024-03-10 12:00 UTC that moves on a
// millisecond at every reading, so that each transaction gets its own,
// ordered time.
func newTestClock() *clocktest.Clock {
	return clocktest.NewTicking(time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC), time.Millisecond)
}

// MustOpenStore opens a store on a new file with a test clock. Cleanup
// checks and closes it (see mustOpen).
func MustOpenStore(tb testing.TB) *Store {
	tb.Helper()
	return MustOpenStoreAt(tb, filepath.Join(tb.TempDir(), "vmpooler.db"), newTestClock())
}

// MustOpenStoreAt opens the store at path with clock clk (nil: time.Now).
func MustOpenStoreAt(tb testing.TB, path string, clk *clocktest.Clock) *Store {
	tb.Helper()
	now := time.Now
	if clk != nil {
		now = clk.Now
	}
	return mustOpen(tb, path, now)
}

// mustOpen opens the store at path on the clock now: the bbolt file at
// path, or on the etcd run (see TestMain) a store on the embedded etcd
// server whose key prefix is named after path, so that opening one path
// again finds the same data. Unless the test has closed it (and so owns
// the file: NewerSchema spoils it on purpose), cleanup runs Check and
// compares the in-memory counts with the indexes, closes it, then runs
// VerifyFile on the closed file, as internal/storetest.MustOpen does for
// the other packages' tests (which this package cannot import: it
// imports store).
func mustOpen(tb testing.TB, path string, now func() time.Time) *Store {
	tb.Helper()
	return mustOpenOn(tb, path, now, onEtcd())
}

// mustOpenOn is mustOpen on etcd or on the bbolt file.
func mustOpenOn(tb testing.TB, path string, now func() time.Time, etcd bool) *Store {
	tb.Helper()
	s := New(path)
	s.Now = now
	if etcd {
		s.Engine, s.Batch = etcdEngine(tb, path), etcdBatch
	}
	if err := s.Open(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if s.eng == nil {
			return // closed by the test
		}
		mustCheck(tb, s)
		if err := s.Close(); err != nil {
			tb.Errorf("close %s: %v", s.Path, err)
			return
		}
		if etcd {
			return
		}
		if err := VerifyFile(s.Path); err != nil {
			tb.Errorf("check on cleanup: %v", err)
		}
	})
	return s
}

// mustCheck fails tb unless Check passes and Counts matches the indexes.
func mustCheck(tb testing.TB, s *Store) {
	tb.Helper()
	if err := s.Check(); err != nil {
		tb.Errorf("check: %v", err)
	}
	want, err := read(s, loadCounts)
	if err != nil {
		tb.Fatal(err)
	}
	got := s.Counts()
	for pool, pc := range got {
		pc.LastReady = time.Time{}
		if pc != want[pool] {
			tb.Errorf("counts of %s: got %+v, want %+v", pool, pc, want[pool])
		}
	}
	for pool, pc := range want {
		if _, ok := got[pool]; !ok {
			tb.Errorf("counts of %s: missing, want %+v", pool, pc)
		}
	}
}

// reopen closes s and opens its file (or etcd prefix) again with the same clock.
func reopen(tb testing.TB, s *Store) *Store {
	tb.Helper()
	if err := s.Close(); err != nil {
		tb.Fatal(err)
	}
	return mustOpenOn(tb, s.Path, s.Now, s.Engine != nil)
}

// mustCode fails tb unless err has code.
func mustCode(tb testing.TB, err error, code string) {
	tb.Helper()
	if got := errs.ErrorCode(err); got != code {
		tb.Fatalf("error code: got %q (%v), want %q", got, err, code)
	}
}

// fillReady adds n ready VMs to pool in one transaction (on etcd, in
// transactions within its size limit) and returns their hostnames in ready
// order. Setup only: tests of MarkReady use the method.
func fillReady(tb testing.TB, s *Store, pool, prefix string, n int) []string {
	tb.Helper()
	hosts := make([]string, n)
	chunk := n
	if s.Batch > 0 {
		chunk = max(s.Batch/6, 1) // per VM: record, two index writes, a delete, the rollup
	}
	for start := 0; start < n; start += chunk {
		end := min(start+chunk, n)
		err := s.update(func(tx kv.Tx, now time.Time, d counts) error {
			for i := start; i < end; i++ {
				hosts[i] = prefix + pool + "-" + itoa(i)
				vm := VM{Hostname: hosts[i], Pool: pool, Template: "tpl"}
				if err := addPending(tx, d, vm, now); err != nil {
					return err
				}
				// Distinct ready times keep the ready order that of hosts.
				if err := markReady(tx, d, hosts[i], "10.0.0.1", now.Add(time.Duration(i-start))); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	return hosts
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func TestOpen(t *testing.T) {
	needFile(t)
	t.Run("FileMode", func(t *testing.T) {
		s := MustOpenStore(t)
		fi, err := os.Stat(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("mode: got %o, want 600", got)
		}
	})
	t.Run("InUse", func(t *testing.T) {
		s := MustOpenStore(t)
		s2 := New(s.Path)
		s2.Timeout = 10 * time.Millisecond
		err := s2.Open()
		if !errors.Is(err, ErrInUse) {
			t.Fatalf("got %v, want ErrInUse", err)
		}
		if want := "database " + s.Path + " is in use by another vmpooler"; err.Error() != want {
			t.Errorf("got %q, want %q", err, want)
		}
	})
	t.Run("NewerSchema", func(t *testing.T) {
		s := MustOpenStore(t)
		s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(keyVersion, []byte{0, 0, 0, 0, 0, 0, 0, 99})
		})
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		err := New(s.Path).Open()
		if err == nil || !strings.Contains(err.Error(), "newer") {
			t.Fatalf("got %v, want a newer-schema error", err)
		}
	})
	t.Run("NotOpen", func(t *testing.T) {
		s := New(filepath.Join(t.TempDir(), "x.db"))
		if _, err := s.Get("x"); !errors.Is(err, errNotOpen) {
			t.Errorf("got %v, want errNotOpen", err)
		}
		if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}}); !errors.Is(err, errNotOpen) {
			t.Errorf("got %v, want errNotOpen", err)
		}
	})
}

func TestReopenKeepsState(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "centos", "a", 3)
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"centos", 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateToken(Token{Token: "tok1", User: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Modify("acentos-0", 0, map[string]string{"team": "qa"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutOverride("centos", Override{Template: "t2"}); err != nil {
		t.Fatal(err)
	}
	day := s.Now().UTC().Format(dateLayout)
	before, err := s.Rollups(day, day)
	if err != nil {
		t.Fatal(err)
	}

	s = reopen(t, s)
	if got := s.Counts()["centos"]; got.Ready != 2 || got.Running != 1 {
		t.Errorf("counts after reopen: got %+v, want 2 ready, 1 running", got)
	}
	if tok, err := s.GetToken("tok1"); err != nil || tok.User != "alice" {
		t.Errorf("token after reopen: got %+v, %v", tok, err)
	}
	after, err := s.Rollups(day, day)
	if err != nil {
		t.Fatal(err)
	}
	if after[0].Boot["centos"] != before[0].Boot["centos"] || after[0].Tags["team"]["qa"] != 1 {
		t.Errorf("rollup after reopen: got %+v, want %+v", after[0], before[0])
	}
	if o, _ := s.Overrides(); o["centos"].Template != "t2" {
		t.Errorf("overrides after reopen: got %+v", o)
	}
}

func TestCountsIsACopy(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 2)
	c := s.Counts()
	c["p"] = PoolCounts{Ready: 99}
	delete(c, "p")
	if got := s.Counts()["p"].Ready; got != 2 {
		t.Errorf("got %d ready, want 2", got)
	}
}

func TestBackup(t *testing.T) {
	needFile(t)
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 3)
	path := filepath.Join(t.TempDir(), "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Backup(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	b := MustOpenStoreAt(t, path, nil)
	if got := b.Counts()["p"].Ready; got != 3 {
		t.Errorf("backup has %d ready, want 3", got)
	}
}

func TestCheckFindsBrokenIndexes(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 2)
	vm, _ := s.Get("p-0")
	var key []byte
	_, key, _ = indexOf(&vm)
	moved := timeKey(vm.Ready, "")
	checkFinds(t, s, []spoil{
		missing("MissingEntry", "missing from its index", bucketPools, key),
		stray("StrayEntry", "does not match vm p-0", bucketDestroyed, append(moved, "p-0"...)),
		stray("EntryWithoutRecord", "running index entry", bucketPools, append(indexPrefix("p", StateRunning), moved...)),
	})
}

// A spoil breaks an index in a way Check must find (its error says want),
// and mends it again.
type spoil struct {
	name, want  string
	spoil, mend func(tx kv.Tx) error
}

// missing is the spoil of an entry taken out of its index.
func missing(name, want string, bucket, key []byte) spoil {
	del := func(tx kv.Tx) error { return tx.Delete(bucket, key) }
	put := func(tx kv.Tx) error { return tx.Put(bucket, key, []byte{}) }
	return spoil{name, want, del, put}
}

// stray is the spoil of an entry put in an index where it does not belong.
func stray(name, want string, bucket, key []byte) spoil {
	s := missing(name, want, bucket, key)
	s.spoil, s.mend = s.mend, s.spoil
	return s
}

// checkFinds runs each spoil on s: Check fails, saying its want, and
// passes again once it is mended.
func checkFinds(t *testing.T, s *Store, spoils []spoil) {
	t.Helper()
	for _, c := range spoils {
		t.Run(c.name, func(t *testing.T) {
			if err := s.eng.Update(c.spoil); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Check = %v, want a problem saying %q", err, c.want)
			}
			if err := s.eng.Update(c.mend); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(); err != nil {
				t.Errorf("Check after mending: %v", err)
			}
		})
	}
}
