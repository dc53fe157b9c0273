package store

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/vmpooler/vmpooler/store/kv"
	bolt "go.etcd.io/bbolt"
)

// countingTx counts the records a transaction reads (Get and Peek) and
// the keys its scans visit.
type countingTx struct {
	kv.Tx
	reads, visited int
}

func (t *countingTx) Get(bucket, key []byte) []byte  { t.reads++; return t.Tx.Get(bucket, key) }
func (t *countingTx) Peek(bucket, key []byte) []byte { t.reads++; return t.Tx.Peek(bucket, key) }
func (t *countingTx) Scan(bucket, prefix, from []byte, fn func(k, v []byte) (bool, error)) error {
	return t.Tx.Scan(bucket, prefix, from, func(k, v []byte) (bool, error) {
		t.visited++
		return fn(k, v)
	})
}

// checkoutFor checks n VMs of pool p out for user, in chunks a store on
// etcd takes in one transaction, and returns them.
func checkoutFor(tb testing.TB, s *Store, user string, n int) []VM {
	tb.Helper()
	var out []VM
	for n > 0 {
		k := min(n, 10)
		vms, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", k}}, User: user})
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, vms...)
		n -= k
	}
	return out
}

// openWithRunning opens a store with ready VMs p-0 to p-<ready-1> in pool
// p, and checks the n oldest out for user.
func openWithRunning(tb testing.TB, ready, n int, user string) (*Store, []VM) {
	tb.Helper()
	s := MustOpenStore(tb)
	fillReady(tb, s, "p", "", ready)
	return s, checkoutFor(tb, s, user, n)
}

// A quota check reads what the user who asks holds, not every running VM
// and pending request: with 300 VMs running and 20 requests pending for
// others, alice's usage visits her 3 VMs' entries and her one request's,
// and reads that request only. (Before the user indexes it decoded every
// running VM and pending request: a read each, on etcd a round trip each.)
func TestQuotaReadsOnlyTheUsersVMs(t *testing.T) {
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 310)
	checkoutFor(t, s, "alice", 3)
	checkoutFor(t, s, "bob", 150)
	checkoutFor(t, s, "alice2", 150) // a name that alice's prefixes
	// Two anonymous: no quota to count against.
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 2}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		if err := s.CreateRequest(Request{ID: "bob-" + itoa(i), User: "bob", Requested: []PoolCount{{"q", 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRequest(Request{ID: "alice-1", User: "alice", Requested: []PoolCount{{"q", 2}}}); err != nil {
		t.Fatal(err)
	}
	var total int
	var per map[string]int
	ct := &countingTx{}
	if err := s.view(func(tx kv.Tx) (err error) {
		ct.Tx = tx
		total, per, err = usage(ct, "alice")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if total != 5 || per["p"] != 3 || per["q"] != 2 {
		t.Errorf("alice's usage = %d %v, want 3 in p and 2 owed in q", total, per)
	}
	if ct.reads != 1 || ct.visited != 4 {
		t.Errorf("usage read %d records and visited %d keys; want alice's 1 request and her 4 entries", ct.reads, ct.visited)
	}
	// The quota holds: alice may take 2 more of a total of 7, not 3.
	q := &Quota{Total: 7}
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 3}}, User: "alice", Quota: q}); err == nil {
		t.Error("alice got 3 more past a quota of 5")
	}
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 2}}, User: "alice", Quota: q}); err != nil {
		t.Errorf("alice's last 2 of 5: %v", err)
	}
}

// The user index follows a VM through a return and an unassign; Check
// finds it complete (as it does at the cleanup of every store test, those
// of ondemand requests and adoption too).
func TestUserIndexFollowsVMs(t *testing.T) {
	s, vms := openWithRunning(t, 4, 3, "carol")
	count := func() int {
		var n int
		if err := s.view(func(tx kv.Tx) (err error) { n, _, err = usage(tx, "carol"); return err }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 3 {
		t.Fatalf("after the checkout: %d, want 3", n)
	}
	if err := s.Return(vms[0].Hostname, "done", Anyone); err != nil {
		t.Fatal(err)
	}
	if err := s.Unassign([]string{vms[1].Hostname}); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Errorf("after a return and an unassign: %d, want 1", n)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

func TestCheckFindsBrokenUserIndex(t *testing.T) {
	s, vms := openWithRunning(t, 2, 1, "dave")
	key := userVMKey(&vms[0])
	ready := VM{Hostname: "p-1", Pool: "p", State: StateRunning, User: "dave"} // p-1 is ready
	strayKey := userVMKey(&ready)
	if err := s.CreateRequest(Request{ID: "r1", User: "dave", Requested: []PoolCount{{"p", 1}}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.GetRequest("r1")
	if err != nil {
		t.Fatal(err)
	}
	rkey := userRequestKey(&r)
	r.User = "eve"
	strayReq := userRequestKey(&r)
	checkFinds(t, s, []spoil{
		missing("MissingEntry", "missing from the user index", bucketUserVMs, key),
		stray("StrayEntry", "does not match vm p-1", bucketUserVMs, strayKey),
		missing("MissingRequestEntry", "request r1 (pending for dave) missing from the user index", bucketUserReqs, rkey),
		stray("StrayRequestEntry", "user index entry of eve does not match request r1", bucketUserReqs, strayReq),
	})
}

// A database of schema 3 (before the user index) opens and gets the index
// of the VMs running then: on bbolt by migration 4, on etcd by the shared
// upgrade, in batches (more running VMs than one batch).
func TestUpgradeToUserIndex(t *testing.T) {
	path := t.TempDir() + "/v3.db"
	s := MustOpenStoreAt(t, path, nil)
	s.Batch = 8 // several batches on etcd, whatever the engine's limit
	fillReady(t, s, "p", "", 30)
	fillReady(t, s, "q", "", 5)
	checkoutFor(t, s, "erin", 20)
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"q", 4}}, User: "frank"}); err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // more pending requests than one batch
		if err := s.CreateRequest(Request{ID: "r" + itoa(i), User: "frank", Requested: []PoolCount{{"q", 1}}}); err != nil {
			t.Fatal(err)
		}
	}
	v3 := binary.BigEndian.AppendUint64(nil, 3)
	if s.db != nil { // bbolt: back to schema 3's buckets
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketUserVMs, bucketUserReqs} {
				if err := tx.DeleteBucket(b); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Put(keyVersion, v3)
		})
		if err := errors.Join(err, db.Close()); err != nil {
			t.Fatal(err)
		}
		if err := VerifyFile(path); err != nil { // as `vmpooler check` before the upgrade
			t.Errorf("VerifyFile of the schema 3 file: %v", err)
		}
	} else { // etcd: no user index, schema 3
		err := s.eng.Update(func(tx kv.Tx) error {
			for _, b := range [][]byte{bucketUserVMs, bucketUserReqs} {
				var keys [][]byte
				if err := tx.Scan(b, nil, nil, func(k, _ []byte) (bool, error) {
					keys = append(keys, append([]byte(nil), k...))
					return true, nil
				}); err != nil {
					return err
				}
				for _, k := range keys {
					if err := tx.Delete(b, k); err != nil {
						return err
					}
				}
			}
			return tx.Put(bucketMeta, keyVersion, v3)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Check(); err == nil {
			t.Fatal("Check passed without the user index: the test would prove nothing")
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	u := New(path)
	u.Batch = 8
	if onEtcd() {
		u.Engine = etcdEngine(t, path)
	}
	if err := u.Open(); err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	for user, want := range map[string]int{"erin": 20, "frank": 4 + 10} {
		var n int
		if err := u.view(func(tx kv.Tx) (err error) { n, _, err = usage(tx, user); return err }); err != nil {
			t.Fatal(err)
		}
		if n != want {
			t.Errorf("%s's usage after the upgrade: %d, want %d", user, n, want)
		}
	}
	if err := u.Check(); err != nil {
		t.Errorf("Check after the upgrade: %v", err)
	}
	if err := u.view(func(tx kv.Tx) error {
		if v := tx.Get(bucketMeta, keyVersion); binary.BigEndian.Uint64(v) != uint64(len(migrations)) {
			t.Errorf("schema version %x after the upgrade, want %d", v, len(migrations))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
