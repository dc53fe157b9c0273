package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket names. Every index is keyed by timeKey (after a prefix in pools)
// so that a cursor walks it oldest first.
var (
	bucketMeta        = []byte("meta")             // "version" → schema version (8 bytes), "instance", "adopted" (instance.go)
	bucketVMs         = []byte("vms")              // hostname → VM (vmcodec.go)
	bucketPools       = []byte("pools")            // pool 0 state 0 timeKey(entered, host) → ""
	bucketDestroyed   = []byte("destroyed")        // timeKey(destroyed, host) → "" (for Purge)
	bucketTokens      = []byte("tokens")           // sha256(token) → Token (JSON)
	bucketTokensUser  = []byte("tokens_by_user")   // user \x00 timeKey(created) sha256(token) → ""
	bucketDays        = []byte("days")             // YYYY-MM-DD → DayRollup (JSON, without Tags)
	bucketDayTags     = []byte("day_tags")         // YYYY-MM-DD tag 0 value → count (8 bytes; rollup.go)
	bucketOverrides   = []byte("overrides")        // pool → Override (JSON)
	bucketRequests    = []byte("requests")         // id → Request (JSON)
	bucketReqsPending = []byte("requests_pending") // timeKey(created, id) → ""
	bucketJobs        = []byte("jobs")             // 8-byte sequence → Job (JSON)
	bucketUserVMs     = []byte("running_by_user")  // uvarint len(user) user pool 0 host → "" (userindex.go)
	bucketUserReqs    = []byte("pending_by_user")  // uvarint len(user) user timeKey(created, id) → "" (userindex.go)

	keyVersion = []byte("version")
)

// migrations upgrade the file one schema version at a time: migrations[i]
// takes version i to version i+1. Append only; never edit a released one.
var migrations = []func(tx *bolt.Tx) error{
	migrateCreateBuckets,
	migrateDayTags,
	migrateBinaryVMs,
	migrateUserIndex,
}

// migrateCreateBuckets creates the buckets of schema version 1.
func migrateCreateBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{bucketVMs, bucketPools, bucketDestroyed, bucketTokens,
		bucketTokensUser, bucketDays, bucketOverrides, bucketRequests, bucketReqsPending, bucketJobs} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

// Store is the bbolt-backed state of the pooler. Set fields after New and
// before Open.
type Store struct {
	Path      string
	Now       func() time.Time // clock, read once per transaction
	Timeout   time.Duration    // how long Open waits for the file lock (default 1s)
	Retention time.Duration    // how long destroyed records are kept (default 168h)

	// Engine, when set before Open, is the database instead of the file
	// at Path (etcd: see OpenShared); Path then only names it in messages.
	Engine kv.Engine
	// Batch bounds how many records one bulk write (a purge) changes in
	// one transaction, for engines that limit a transaction's size
	// (etcd's --max-txn-ops); 0 is no bound.
	Batch int
	// CheckoutWindow lets a checkout take any of the oldest Count+window
	// ready VMs of a pool, at random, instead of exactly the oldest: with
	// several processes on one database (etcd), concurrent checkouts then
	// rarely pick the same VM and retry. 0 (bbolt, one process) is
	// strictly oldest first.
	CheckoutWindow int

	changed atomic.Pointer[func()] // see OnChange

	eng    kv.Engine // what transactions run on: the bbolt file or Engine
	db     *bolt.DB  // the bbolt file; nil on another engine
	shared *follower // counts kept from a shared engine's changes; nil on bbolt

	qmu   sync.RWMutex  // guards queue against Close
	queue chan *call    // writes for the committer (see commit); nil when closed
	qdone chan struct{} // closed when the committer has stopped

	mu     sync.RWMutex
	counts counts // pool → index sizes, changed only after a commit

	poolMu    sync.Mutex             // guards poolLocks
	poolLocks map[string]*sync.Mutex // pool → its checkout lock on a shared engine (checkout.go)

	instance string   // this database's pooler instance id (instance.go)
	adopted  []string // instance ids taken over, as of Open
}

// batch returns how many records a bulk write may change per transaction.
func (s *Store) batch() int {
	if s.Batch > 0 {
		return s.Batch
	}
	return math.MaxInt
}

// DefaultRetention is how long destroyed records are kept unless set
// (upstream's data_ttl default).
const DefaultRetention = 168 * time.Hour

// New returns a Store for the file at path with defaults set.
func New(path string) *Store {
	return &Store{Path: path, Now: time.Now, Timeout: time.Second, Retention: DefaultRetention}
}

// inUseError names the file another process holds; it wraps ErrInUse.
type inUseError struct{ path string }

func (e *inUseError) Error() string {
	return fmt.Sprintf("database %s is in use by another vmpooler", e.path)
}

func (e *inUseError) Unwrap() error { return ErrInUse }

// Open opens (creating with mode 0600) the file, runs migrations and loads counts.
// A file locked by another process gives ErrInUse (wrapped, naming the file).
func (s *Store) Open() error {
	if s.eng != nil {
		return fmt.Errorf("store: %s is already open", s.Path)
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Engine != nil {
		return s.openShared()
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = time.Second // bbolt's 0 waits for ever; never hang at start
	}
	db, c, err := s.open(timeout)
	if err != nil {
		return err
	}
	s.db, s.counts, s.eng = db, c, boltEngine{s}
	s.queue, s.qdone = make(chan *call, maxGroup), make(chan struct{})
	go s.committer(s.queue, s.qdone)
	return nil
}

// open opens the file, migrates it and loads the counts. bbolt panics on
// some damage (a page that is not what its parent says, while rebuilding
// the freelist at open); that and its own corruption errors become a
// corruptError naming the file and what to do.
func (s *Store) open(timeout time.Duration) (db *bolt.DB, c counts, err error) {
	var opened *bolt.DB
	defer func() {
		if r := recover(); r != nil {
			err = &corruptError{path: s.Path, cause: r}
		}
		if err != nil && opened != nil {
			opened.Close()
		}
		if err != nil {
			db, c = nil, nil
		}
	}()
	// NoFreelistSync spares every commit the freelist page writes (bbolt
	// rebuilds the freelist by scanning at open); commits stay fsynced.
	opts := &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}
	db, err = bolt.Open(s.Path, 0o600, opts)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, nil, &inUseError{path: s.Path}
	} else if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return nil, nil, &corruptError{path: s.Path, cause: err}
	} else if err != nil {
		return nil, nil, fmt.Errorf("open database %s: %w", s.Path, err)
	}
	opened = db
	var instance string
	var adopted []string
	err = db.Update(func(tx *bolt.Tx) error {
		if err := migrate(tx); err != nil {
			return err
		}
		if instance, err = ensureInstance(boltTx{tx}); err != nil {
			return err
		}
		if adopted, err = loadAdopted(boltTx{tx}); err != nil {
			return err
		}
		c, err = loadCounts(boltTx{tx})
		return err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open database %s: %w", s.Path, err)
	}
	s.instance, s.adopted = instance, adopted
	return db, c, nil
}

// Backup writes a consistent copy of the whole file to w (one read
// transaction; writers go on meanwhile) and returns the bytes written.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.viewFile(func(tx *bolt.Tx) (err error) {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// migrate runs every migration newer than the file's schema version.
func migrate(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	var version uint64
	if v := meta.Get(keyVersion); len(v) == 8 {
		version = binary.BigEndian.Uint64(v)
	} else if v != nil {
		return fmt.Errorf("bad schema version %x", v)
	}
	if version > uint64(len(migrations)) {
		return fmt.Errorf("schema version %d is newer than this vmpooler (%d)", version, len(migrations))
	}
	for ; version < uint64(len(migrations)); version++ {
		if err := migrations[version](tx); err != nil {
			return fmt.Errorf("migration %d: %w", version+1, err)
		}
	}
	return meta.Put(keyVersion, binary.BigEndian.AppendUint64(nil, version))
}

// Close closes the file, or the engine.
func (s *Store) Close() error {
	if s.eng == nil {
		return nil
	} else if s.db == nil {
		return s.closeShared()
	}
	s.qmu.Lock()
	close(s.queue) // the committer commits what is queued, then stops
	s.queue = nil
	s.qmu.Unlock()
	<-s.qdone
	err := s.db.Close()
	s.db, s.eng = nil, nil
	return err
}

var (
	errNotOpen = errors.New("store: database is not open")
	errNotFile = errs.Errorf(errs.EINVALID, "this works on a bbolt database file only, not on etcd")
)

// update runs fn as one write transaction with the clock read once, and
// applies the count changes fn records only after the commit succeeded.
func (s *Store) update(fn func(tx kv.Tx, now time.Time, d counts) error) error {
	if s.eng == nil {
		return errNotOpen
	}
	now := s.Now()
	var d counts
	err := s.eng.Update(func(tx kv.Tx) error {
		d = counts{} // reset: the engine may run fn again
		return fn(tx, now, d)
	})
	if err != nil {
		return err
	}
	s.apply(d)
	return nil
}

// view runs fn as one read transaction.
func (s *Store) view(fn func(tx kv.Tx) error) error {
	if s.eng == nil {
		return errNotOpen
	}
	return s.eng.View(fn)
}

// read runs get as one read transaction and returns what it read.
func read[T any](s *Store, get func(tx kv.Tx) (T, error)) (T, error) {
	var out T
	err := s.view(func(tx kv.Tx) (err error) {
		out, err = get(tx)
		return err
	})
	return out, err
}

// viewFile runs fn as one read transaction of the bbolt file. A panic in
// it (bbolt meeting a damaged page) becomes a corruptError rather than
// killing the process.
func (s *Store) viewFile(fn func(tx *bolt.Tx) error) (err error) {
	if s.db == nil {
		if s.eng != nil {
			return errNotFile
		}
		return errNotOpen
	}
	defer func() {
		if r := recover(); r != nil {
			err = &corruptError{path: s.Path, cause: r}
		}
	}()
	return s.db.View(fn)
}

// counts is pool → index sizes; as a change, its numbers may be negative.
type counts map[string]PoolCounts

// add adds n to the count of state st of pool.
func (c counts) add(pool string, st State, n int) {
	pc := c[pool]
	switch st {
	case StatePending:
		pc.Pending += n
	case StateReady:
		pc.Ready += n
	case StateRunning:
		pc.Running += n
	case StateCompleted:
		pc.Completed += n
	default:
		return
	}
	c[pool] = pc
}

// readyAt records that a VM of pool became ready at t.
func (c counts) readyAt(pool string, t time.Time) {
	pc := c[pool]
	if t.After(pc.LastReady) {
		pc.LastReady = t
	}
	c[pool] = pc
}

// apply adds a committed change to the in-memory counts. On a shared
// engine the counts follow the engine's changes instead (shared.go).
func (s *Store) apply(d counts) {
	if len(d) == 0 || s.shared != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for pool, dc := range d {
		pc := s.counts[pool]
		pc.Pending += dc.Pending
		pc.Ready += dc.Ready
		pc.Running += dc.Running
		pc.Completed += dc.Completed
		if dc.LastReady.After(pc.LastReady) {
			pc.LastReady = dc.LastReady
		}
		if pc == (PoolCounts{}) {
			delete(s.counts, pool)
		} else {
			s.counts[pool] = pc
		}
	}
}

// Counts returns per-pool state counts from memory (no transaction): cheap
// enough for every /status request. Kept exact after each commit.
func (s *Store) Counts() map[string]PoolCounts {
	s.shared.sync()
	return s.CountsNow()
}

// CountsNow is Counts without waiting, on a shared engine, for this
// process's own last writes to be seen: a hint for planning a checkout
// (which the checkout's transaction checks anyway), without a wait on the
// checkout's path.
func (s *Store) CountsNow() map[string]PoolCounts {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]PoolCounts, len(s.counts))
	for pool, pc := range s.counts {
		out[pool] = pc
	}
	return out
}

// loadCounts counts the entries of every pool's state indexes. LastReady
// starts zero: it reports readiness since open.
func loadCounts(tx kv.Tx) (counts, error) {
	c := counts{}
	err := tx.Scan(bucketPools, nil, nil, func(k, _ []byte) (bool, error) {
		pool, st, _, ok := splitIndexKey(k)
		if !ok {
			return false, fmt.Errorf("bad index key %x", k)
		}
		c.add(pool, st, 1)
		return true, nil
	})
	return c, err
}
