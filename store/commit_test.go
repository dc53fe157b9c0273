package store

import (
	"errors"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A failing write in a group gets its own error; the others commit.
func TestCommitGroupIsolatesFailures(t *testing.T) {
	needFile(t)
	s := MustOpenStore(t)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for i := range errs {
		wg.Go(func() {
			errs[i] = s.commit(func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucketMeta).Put([]byte("k"+itoa(i)), []byte("v")); err != nil {
					return err
				}
				if i%3 == 0 {
					return boom // after a write: the whole group must roll back and retry
				}
				return nil
			})
		})
	}
	wg.Wait()
	err := s.viewFile(func(tx *bolt.Tx) error {
		for i, e := range errs {
			got := tx.Bucket(bucketMeta).Get([]byte("k" + itoa(i)))
			switch {
			case i%3 == 0 && !errors.Is(e, boom):
				t.Errorf("write %d: err %v, want boom", i, e)
			case i%3 == 0 && got != nil:
				t.Errorf("write %d failed but its change was committed", i)
			case i%3 != 0 && (e != nil || got == nil):
				t.Errorf("write %d: err %v, committed %v", i, e, got != nil)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A panic inside a transaction is an error for that caller only; the
// committer goes on serving.
func TestCommitPanicIsAnError(t *testing.T) {
	needFile(t)
	s := MustOpenStore(t)
	err := s.commit(func(*bolt.Tx) error { panic("bad write") })
	if err == nil || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("err = %v, want a panic error", err)
	}
	if err := s.commit(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put([]byte("after"), []byte("1")) }); err != nil {
		t.Fatalf("commit after panic: %v", err)
	}
}

func TestCommitAfterClose(t *testing.T) {
	needFile(t)
	s := MustOpenStore(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.commit(func(*bolt.Tx) error { return nil }); !errors.Is(err, errNotOpen) {
		t.Fatalf("err = %v, want errNotOpen", err)
	}
}
