package store

import (
	"bytes"

	"github.com/vmpooler/vmpooler/store/kv"
	bolt "go.etcd.io/bbolt"
)

// boltEngine runs the store's transactions on its bbolt file: writes
// through the group committer (commit.go), reads as bbolt views.
type boltEngine struct{ s *Store }

func (e boltEngine) Update(fn func(kv.Tx) error) error {
	return e.s.commit(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (e boltEngine) View(fn func(kv.Tx) error) error {
	return e.s.viewFile(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (e boltEngine) Close() error { return nil } // Store.Close closes the file

// boltTx is a bbolt transaction seen as a kv.Tx. Every bucket exists
// (migrations create them), so a missing one is a bug, not a state.
type boltTx struct{ tx *bolt.Tx }

func (t boltTx) Get(bucket, key []byte) []byte       { return t.tx.Bucket(bucket).Get(key) }
func (t boltTx) Peek(bucket, key []byte) []byte      { return t.tx.Bucket(bucket).Get(key) }
func (t boltTx) Put(bucket, key, value []byte) error { return t.tx.Bucket(bucket).Put(key, value) }
func (t boltTx) Delete(bucket, key []byte) error     { return t.tx.Bucket(bucket).Delete(key) }

func (t boltTx) NextSequence(bucket []byte) (uint64, error) {
	return t.tx.Bucket(bucket).NextSequence()
}

func (t boltTx) SetSequence(bucket []byte, n uint64) error {
	b := t.tx.Bucket(bucket)
	if b.Sequence() >= n {
		return nil
	}
	return b.SetSequence(n)
}

func (t boltTx) Scan(bucket, prefix, from []byte, fn func(k, v []byte) (bool, error)) error {
	if from == nil || bytes.Compare(from, prefix) < 0 {
		from = prefix
	}
	c := t.tx.Bucket(bucket).Cursor()
	for k, v := c.Seek(from); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
		if more, err := fn(k, v); err != nil || !more {
			return err
		}
	}
	return nil
}
