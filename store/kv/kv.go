// Package kv is what the store's domain operations need of a database: an
// ordered key-value space split into buckets, read and written in
// serializable transactions. The store writes every rule once against
// these interfaces; its bbolt file (the default) and etcd (store/etcd, for
// several replicas) are two engines under the same code, so they cannot
// drift apart.
//
// kv imports nothing, so an engine need not import the store.
package kv

import "context"

// Tx is one transaction. Keys sort bytewise within a bucket. Slices handed
// to the caller are valid until the transaction ends and must not be
// changed; slices given to Put may not be changed until it ends.
//
// A read that fails (an engine over the network) returns nil; the engine
// keeps the first failure and the transaction ends with it, whatever fn
// returned, so that no decision taken on a failed read is committed.
type Tx interface {
	// Get returns the value of key in bucket, or nil if there is none.
	Get(bucket, key []byte) []byte
	// Peek is Get for a value whose changes the transaction guards by a
	// Scan already: an index whose entries move whenever what the caller
	// reads of the value changes. An engine that checks reads at commit
	// (etcd) does not check this one, so that a transaction reading many
	// records through such an index stays within the engine's limits.
	Peek(bucket, key []byte) []byte
	// Put sets key in bucket to value.
	Put(bucket, key, value []byte) error
	// Delete removes key from bucket; deleting a missing key is no error.
	Delete(bucket, key []byte) error
	// Scan calls fn for each key of bucket that starts with prefix and is
	// not before from (nil: from the start of prefix), in order, until fn
	// returns false or an error (which Scan returns). fn must not write
	// to the bucket: collect, then write.
	Scan(bucket, prefix, from []byte, fn func(k, v []byte) (bool, error)) error
	// NextSequence returns the next number of bucket's sequence (1, 2, ...).
	NextSequence(bucket []byte) (uint64, error)
	// SetSequence makes n the bucket's sequence, unless it is past n
	// already: the next NextSequence returns more than n.
	SetSequence(bucket []byte, n uint64) error
}

// Engine runs transactions.
type Engine interface {
	// Update runs fn in a read-write transaction and commits what it
	// wrote when it returns nil; an error from fn writes nothing. fn may
	// run more than once (a conflict with a concurrent writer, or a
	// shared commit), so it must start from scratch each time; and it
	// must not call Update itself (it would wait for its own commit).
	Update(fn func(Tx) error) error
	// View runs fn in a read-only transaction: one consistent snapshot.
	View(fn func(Tx) error) error
	// Close releases the engine.
	Close() error
}

// Event is one change of a followed bucket.
type Event struct {
	// Reset: forget what earlier events said; the keys of a fresh
	// snapshot follow (Snapshot set), then live changes.
	Reset    bool
	Key      []byte
	Deleted  bool // the key went; otherwise it was created
	Snapshot bool // part of the snapshot after a Reset, not a live change
}

// Shared is implemented by engines whose data other processes change too
// (etcd). The store then keeps what it derives from a bucket (the counts
// of /status) by following it instead of from its own commits.
type Shared interface {
	// Follow calls fn, from one goroutine, with a Reset, the bucket's keys
	// at one revision, then every later creation or deletion of a key in
	// commit order, until ctx ends. After a gap (a lost watch) it starts
	// again with a Reset. It returns once the first snapshot was delivered.
	Follow(ctx context.Context, bucket []byte, fn func(Event)) error
	// Sync waits until fn has been called for every change this process
	// committed before Sync was called, or until ctx ends.
	Sync(ctx context.Context) error
}
