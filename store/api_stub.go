package store

// This file is the agreed API of Store with stub bodies. The store work
// replaces every stub with the real implementation (and deletes this file);
// the signatures are the contract other packages compile against.

import (
	"errors"
	"time"
)

var errStub = errors.New("store: not implemented")

// Store is the bbolt-backed state of the pooler. Set fields after New and
// before Open.
type Store struct {
	Path       string
	Now        func() time.Time // clock, read once per transaction
	Timeout    time.Duration    // how long Open waits for the file lock (default 1s)
	BatchDelay time.Duration    // bbolt MaxBatchDelay for checkouts (default 1ms)
	Retention  time.Duration    // how long destroyed records are kept (default 168h)
}

// New returns a Store for the file at path with defaults set.
func New(path string) *Store {
	return &Store{Path: path, Now: time.Now, Timeout: time.Second, BatchDelay: time.Millisecond, Retention: 168 * time.Hour}
}

// Open opens (creating with mode 0600) the file, runs migrations and loads counts.
// A file locked by another process gives ErrInUse (wrapped, naming the file).
func (s *Store) Open() error { return errStub }

// Close closes the file.
func (s *Store) Close() error { return nil }

// AddPending records a new VM in state pending (Started = now).
// ECONFLICT if a record with that hostname exists (even destroyed).
func (s *Store) AddPending(vm VM) error { return errStub }

// MarkCloned records that the clone task of a pending VM finished.
func (s *Store) MarkCloned(host string) error { return errStub }

// MarkReady moves a pending VM to ready (or, when it belongs to an ondemand
// request, straight to running and onto the request), storing ip and adding
// its clone (Cloned-Started) and boot (Ready-Cloned) durations to today's rollup.
// ENOTFOUND if unknown; ECONFLICT if not pending.
func (s *Store) MarkReady(host, ip string) error { return errStub }

// Checkout moves VMs ready → running, oldest ready first, all or nothing.
// The result is in request order. EEMPTY (naming the pool) if any pool is short;
// then nothing changes.
func (s *Store) Checkout(req CheckoutRequest) ([]VM, error) { return nil, errStub }

// Return moves a running VM to completed (DELETE /vm/<host>).
// ENOTFOUND if no such VM or it is not running.
func (s *Store) Return(host, reason string) error { return errStub }

// Fail moves a pending, ready or running VM to completed with a reason.
// ENOTFOUND if no such live VM; a completed VM is left as it is (nil).
func (s *Store) Fail(host, reason string) error { return errStub }

// Destroy moves a VM from any live state to destroyed, keeping the record
// for Retention. ENOTFOUND if unknown.
func (s *Store) Destroy(host, reason string) error { return errStub }

// Purge deletes destroyed records older than Retention and returns how many.
func (s *Store) Purge() (int, error) { return 0, errStub }

// Modify changes a live VM's lifetime (if lifetime > 0) and merges tags
// (counting each new tag value in today's rollup). Returns the new record.
func (s *Store) Modify(host string, lifetime int, tags map[string]string) (VM, error) {
	return VM{}, errStub
}

// Get returns a VM record. ENOTFOUND if unknown.
func (s *Store) Get(host string) (VM, error) { return VM{}, errStub }

// List returns the VMs of a pool in a state, in index order (oldest first).
func (s *Store) List(pool string, state State) ([]VM, error) { return nil, errStub }

// ListPool returns every live (not destroyed) VM of a pool in one transaction.
func (s *Store) ListPool(pool string) ([]VM, error) { return nil, errStub }

// Pools returns the names of every pool with at least one live VM.
func (s *Store) Pools() ([]string, error) { return nil, errStub }

// Counts returns per-pool state counts from memory (no transaction): cheap
// enough for every /status request. Kept exact after each commit.
func (s *Store) Counts() map[string]PoolCounts { return nil }

// RequestSnapshot adds a pending snapshot to a live VM and queues a job.
func (s *Store) RequestSnapshot(host, name string) error { return errStub }

// RequestRevert queues a revert to a done snapshot. ENOTFOUND if the VM or a
// done snapshot of that name does not exist.
func (s *Store) RequestRevert(host, name string) error { return errStub }

// RequestDisk adds a pending disk to a live VM and queues a job.
func (s *Store) RequestDisk(host string, sizeGB int) error { return errStub }

// Jobs returns the queued jobs, oldest first.
func (s *Store) Jobs() ([]Job, error) { return nil, errStub }

// FinishJob records a job's outcome on its VM (done, or failed with jobErr)
// and removes it from the queue.
func (s *Store) FinishJob(id uint64, jobErr error) error { return errStub }

// Rollups returns the day rollups from..to inclusive (YYYY-MM-DD), one per
// day in order, empty days included. EINVALID for bad dates or from > to.
func (s *Store) Rollups(from, to string) ([]DayRollup, error) { return nil, errStub }

// CreateToken stores a token. ECONFLICT if it exists.
func (s *Store) CreateToken(t Token) error { return errStub }

// GetToken returns a token. ENOTFOUND if unknown.
func (s *Store) GetToken(token string) (Token, error) { return Token{}, errStub }

// TokensByUser lists a user's tokens, oldest first.
func (s *Store) TokensByUser(user string) ([]Token, error) { return nil, errStub }

// TouchToken sets a token's LastUsed to now.
func (s *Store) TouchToken(token string) error { return errStub }

// DeleteToken removes a token. ENOTFOUND if unknown.
func (s *Store) DeleteToken(token string) error { return errStub }

// PutOverride replaces a pool's runtime override (an empty Override removes it).
func (s *Store) PutOverride(pool string, o Override) error { return errStub }

// Overrides returns every pool's runtime override.
func (s *Store) Overrides() (map[string]Override, error) { return nil, errStub }

// CreateRequest stores a new ondemand request (State pending).
func (s *Store) CreateRequest(r Request) error { return errStub }

// GetRequest returns an ondemand request. ENOTFOUND if unknown.
func (s *Store) GetRequest(id string) (Request, error) { return Request{}, errStub }

// PendingRequests returns the requests in state pending, oldest first.
func (s *Store) PendingRequests() ([]Request, error) { return nil, errStub }

// FinishRequest sets a pending request's state (ready, failed or deleted) and
// error. Deleting moves its running VMs to completed. A deleted request is
// never overwritten.
func (s *Store) FinishRequest(id, state, errMsg string) error { return errStub }
