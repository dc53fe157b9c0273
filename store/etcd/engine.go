// Package etcd is the store's engine on etcd (v3), for several vmpooler
// replicas sharing one state. It is the only package that imports the etcd
// client, and it implements kv.Engine and kv.Shared; it does not import the
// store, whose domain rules run on it unchanged.
//
// # Layout
//
// Every key lives under Config.Prefix (default "vmpooler/"): the key k of
// bucket b is Prefix + b + "/" + k (k is any bytes), and the sequence of
// bucket b (NextSequence) is Prefix + "seq/" + b, holding the last number
// handed out in decimal. A bucket name is therefore not empty, holds no "/"
// and is not "seq".
//
// # Transactions
//
// Update runs optimistic, serializable transactions. An attempt reads at
// one revision: the first read takes the store's current revision from its
// answer, every later read asks for that revision. Writes are buffered in
// the attempt, and later reads see them (Get, and Scan merges them into
// etcd's keys in order). At the end one etcd Txn commits the writes if
// nothing the attempt depended on changed since its revision:
//
//   - every key read with Get (or NextSequence) still has the mod revision
//     it was read with (0: still missing);
//   - every key that a Scan handed out, or skipped for a buffered write,
//     and that the attempt writes still has the mod revision the Scan saw
//     (so a concurrent delete of a key acted upon is a conflict);
//   - no key in a scanned span was created or changed after the revision
//     (ModRevision < rev+1 over the range). The span is what fn looked at:
//     from the start of the Scan to the last key handed to fn when fn
//     stopped early, or the whole range when the Scan ran out, so that an
//     insert into what a scan saw is a conflict (no phantoms) while inserts
//     beyond where it stopped are not.
//
// If a compare fails, fn runs again from scratch after a jittered backoff
// that grows with the attempts (random below 1ms << attempt, at most
// 100ms), at least 3 times and then until RequestTimeout has passed since
// the first attempt; after that Update fails with EUNAVAILABLE saying that
// it kept conflicting. A revision compacted away during an attempt also
// starts it again. A transaction that wrote nothing sends no Txn: its
// reads were one snapshot.
//
// A range compare cannot see a key that is no longer there: the deletion,
// by another process, of a key that a Scan handed out but the transaction
// neither wrote nor read with Get is not a conflict. That is enough for the
// store: what it decides from a scan alone is a count or a choice of
// candidates (conservative: a key gone since only means one fewer), and
// every key it then acts upon it writes or reads, which is compared.
//
// # Errors
//
// Every etcd request is bounded by Config.RequestTimeout. A network error
// or a timeout is errs.EUNAVAILABLE ("etcd unreachable: ..."); a
// transaction larger than etcd takes (more than MaxTxnOps compares or
// writes, or too many bytes) is errs.EINVALID, saying how many operations
// it needs, so that a caller can work in smaller batches. A commit whose
// answer is lost (a timeout after the Txn was sent) may still have been
// applied: EUNAVAILABLE then says only that the outcome is unknown.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

var (
	_ kv.Engine = (*Engine)(nil)
	_ kv.Shared = (*Engine)(nil)
)

// Retries of a conflicting Update: at least minAttempts, and then as long
// as RequestTimeout has not passed since the first.
const minAttempts = 3

// maxBackoff caps the wait between attempts. Waits grow with the attempts
// (1ms << attempt, random below it) so that many writers of one key spread
// out rather than keep failing each other.
const maxBackoff = 100 * time.Millisecond

// defaultPageSize is how many keys one range request of a Scan or of a
// Follow snapshot asks for.
const defaultPageSize = 512

// Engine is a kv.Engine and kv.Shared on etcd. It is safe for concurrent
// use.
type Engine struct {
	cfg    Config
	client *clientv3.Client
	eps    string // the endpoints, for errors

	pageSize int // keys per range request (tests make it small)

	ctx    context.Context // ended by Close; the followers stop with it
	cancel context.CancelFunc
	wg     sync.WaitGroup // the followers' goroutines

	committed atomic.Int64 // highest revision this engine committed

	gets, txns    atomic.Int64 // requests of transactions, for tests
	afterSnapshot func(n int)  // called by Follow after its n-th snapshot, for tests

	mu        sync.Mutex
	followers map[*follower]struct{}
	changed   chan struct{} // closed (and replaced) when a follower progresses
}

// Open connects to etcd and checks, with one request bounded by the
// request timeout, that it answers. An unreachable etcd is an error with
// code errs.EUNAVAILABLE naming the endpoints.
func Open(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Endpoints) == 0 {
		return nil, errs.Errorf(errs.EINVALID, "etcd: no endpoints")
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return nil, err
	}
	eps := strings.Join(cfg.Endpoints, ",")
	client, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: cfg.RequestTimeout,
		TLS:                  tlsCfg,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Logger:               zap.NewNop(),
	})
	if err != nil {
		return nil, errs.Errorf(errs.EUNAVAILABLE, "etcd unreachable at %s: %v", eps, err)
	}
	e := newEngine(cfg, client)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.RequestTimeout)
	defer cancel()
	if _, err := client.Get(ctx, cfg.Prefix, clientv3.WithPrefix(), clientv3.WithLimit(1), clientv3.WithKeysOnly()); err != nil {
		e.Close()
		return nil, errs.Errorf(errs.EUNAVAILABLE, "etcd unreachable at %s: no answer within %s: %v", eps, cfg.RequestTimeout, err)
	}
	return e, nil
}

func newEngine(cfg Config, client *clientv3.Client) *Engine {
	ctx, cancel := context.WithCancel(context.Background())
	return &Engine{
		cfg: cfg, client: client, eps: strings.Join(cfg.Endpoints, ","),
		pageSize: defaultPageSize, ctx: ctx, cancel: cancel,
		followers: map[*follower]struct{}{}, changed: make(chan struct{}),
	}
}

// Client returns the etcd client (leader election uses it too).
func (e *Engine) Client() *clientv3.Client { return e.client }

// Prefix returns the prefix of every key, ending with "/".
func (e *Engine) Prefix() string { return e.cfg.Prefix }

// Close stops the followers and closes the client.
func (e *Engine) Close() error {
	e.mu.Lock()
	e.cancel() // under mu: Follow adds to wg only before it
	e.mu.Unlock()
	e.wg.Wait()
	if err := e.client.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Update runs fn in a read-write transaction (see the package doc).
func (e *Engine) Update(fn func(kv.Tx) error) error { return e.update(fn, nil) }

// update is Update, with every commit also requiring f when it is set.
func (e *Engine) update(fn func(kv.Tx) error, f *Fence) error {
	start := time.Now()
	for attempt := 0; ; attempt++ {
		t := e.newTx(false)
		t.fence = f
		err := fn(t)
		if t.err != nil {
			err = t.err
		}
		if err == nil {
			err = t.commit()
		}
		if !errors.Is(err, errRetry) {
			return err
		}
		if attempt+1 >= minAttempts && time.Since(start) >= e.cfg.RequestTimeout {
			return errs.Errorf(errs.EUNAVAILABLE,
				"etcd: the transaction kept conflicting with concurrent writers (%d attempts in %s); try again",
				attempt+1, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(backoff(attempt))
	}
}

// View runs fn in a read-only transaction at one revision. Unlike Update it
// never runs fn twice: a revision compacted away in the middle of fn is an
// EUNAVAILABLE error (try again).
func (e *Engine) View(fn func(kv.Tx) error) error {
	t := e.newTx(true)
	err := fn(t)
	if t.err != nil {
		err = t.err
	}
	if errors.Is(err, errRetry) {
		return errs.Errorf(errs.EUNAVAILABLE, "etcd compacted revision %d while it was being read; try again", t.rev)
	}
	return err
}

// backoff returns a random wait before attempt+1: up to 1ms << attempt,
// at most maxBackoff.
func backoff(attempt int) time.Duration {
	limit := maxBackoff
	if attempt < 16 && time.Millisecond<<attempt < maxBackoff {
		limit = time.Millisecond << attempt
	}
	return rand.N(limit) + 1
}

// errRetry marks a failed attempt that runs again: a conflict, or a
// revision compacted away.
var errRetry = errors.New("etcd: retry the transaction")

// request returns a context for one etcd request.
func (e *Engine) request() (context.Context, context.CancelFunc) {
	return context.WithTimeout(e.ctx, e.cfg.RequestTimeout)
}

// wrap turns an error of the etcd client into the application's error.
func (e *Engine) wrap(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, rpctypes.ErrCompacted):
		return fmt.Errorf("%w: %w", errRetry, err)
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return errs.Errorf(errs.EINVALID, "etcd refused the transaction: it has more operations than etcd's max_txn_ops (set max_txn_ops no higher than the server's)")
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return errs.Errorf(errs.EINVALID, "etcd refused the transaction: it is larger than etcd's max-request-bytes; do less in one operation")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		if e.ctx.Err() != nil {
			return errs.Errorf(errs.EUNAVAILABLE, "etcd: the engine is closed")
		}
		return e.noAnswer(err)
	}
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		// Refused by etcd (no leader, auth, no space...): it answers,
		// but not with what the operation needs.
		return errs.WithCause(e.at(err), errs.EUNAVAILABLE, "the database (etcd) refused the operation; try again")
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.DeadlineExceeded {
		return e.noAnswer(err)
	}
	return errs.WithCause(e.at(err), errs.EUNAVAILABLE, "the database (etcd) cannot be reached; try again")
}

// The errors of an unavailable etcd tell a client what happened and
// whether to try again; where etcd is and what its client said (the
// cause, for the log and the command line) they keep from clients.

// noAnswer is the error of a request etcd did not answer in time.
func (e *Engine) noAnswer(err error) error {
	return errs.WithCause(e.at(err), errs.EUNAVAILABLE, "the database (etcd) did not answer within %s; try again", e.cfg.RequestTimeout)
}

// at is err, naming the endpoints it came from.
func (e *Engine) at(err error) error { return fmt.Errorf("etcd at %s: %w", e.eps, err) }

// bucketBase returns the prefix of bucket's keys, Prefix + bucket + "/".
func (e *Engine) bucketBase(bucket []byte) (string, error) {
	if err := checkBucket(bucket); err != nil {
		return "", err
	}
	return e.cfg.Prefix + string(bucket) + "/", nil
}

// checkBucket refuses a bucket name whose keys would mix with another's.
func checkBucket(bucket []byte) error {
	b := string(bucket)
	if b == "" || b == "seq" || strings.Contains(b, "/") {
		return fmt.Errorf("etcd: bad bucket name %q (empty, \"seq\" or with a \"/\")", b)
	}
	return nil
}
