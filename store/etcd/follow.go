package etcd

import (
	"context"
	"math/rand/v2"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// follower is one Follow. progress (guarded by Engine.mu) is the revision
// up to which fn has been told every change of the bucket.
type follower struct {
	progress int64
}

// noteCommit records a revision this engine committed, for Sync.
func (e *Engine) noteCommit(rev int64) {
	for {
		cur := e.committed.Load()
		if rev <= cur || e.committed.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// setProgress raises f's progress to rev and wakes Sync.
func (e *Engine) setProgress(f *follower, rev int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if rev > f.progress {
		f.progress = rev
		e.signal()
	}
}

// signal wakes every Sync; e.mu must be held.
func (e *Engine) signal() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// watchContext returns ctx with the same outgoing metadata on every watch
// and progress request of the engine, whatever ctx carried: the client
// keys its watch streams by that metadata, and RequestProgress reaches only
// the watches of its own stream. It also makes a watch on a member cut off
// from its leader fail instead of hang.
func watchContext(ctx context.Context) context.Context {
	return metadata.NewOutgoingContext(ctx,
		metadata.Pairs(rpctypes.MetadataRequireLeaderKey, rpctypes.MetadataHasLeader))
}

// Follow implements kv.Shared. The snapshot is a keys-only range read at
// one revision, page by page; live changes come from a watch from the
// next revision: a key created (not a plain overwrite) or deleted. A lost
// watch (an error, a compaction, a cancel while ctx lives) starts over
// with a Reset and a fresh snapshot, after a backoff while etcd fails.
func (e *Engine) Follow(ctx context.Context, bucket []byte, fn func(kv.Event)) error {
	base, err := e.bucketBase(bucket)
	if err != nil {
		return err
	}
	e.mu.Lock()
	if e.ctx.Err() != nil {
		e.mu.Unlock()
		return errs.Errorf(errs.EUNAVAILABLE, "etcd: the engine is closed")
	}
	f := &follower{}
	e.followers[f] = struct{}{}
	e.wg.Add(1)
	e.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(e.ctx, cancel)
	first := make(chan error, 1)
	go func() {
		defer e.wg.Done()
		defer cancel()
		defer stop()
		defer func() {
			e.mu.Lock()
			delete(e.followers, f)
			e.signal()
			e.mu.Unlock()
		}()
		e.follow(ctx, f, base, fn, first)
	}()
	return <-first
}

// follow runs a follower until ctx ends; it sends the outcome of the first
// snapshot on first and, if that failed, returns.
func (e *Engine) follow(ctx context.Context, f *follower, base string, fn func(kv.Event), first chan<- error) {
	failures, snapshots := 0, 0
	for {
		rev, err := e.snapshot(ctx, base, fn)
		if first != nil {
			first <- err
			if err != nil {
				return
			}
			first = nil
		}
		if err == nil {
			failures = 0
			e.setProgress(f, rev)
			if snapshots++; e.afterSnapshot != nil {
				e.afterSnapshot(snapshots)
			}
			e.watch(ctx, f, base, rev, fn)
		} else {
			failures++
		}
		if ctx.Err() != nil {
			return
		}
		wait := min(50*time.Millisecond<<min(failures, 8), 5*time.Second)
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// snapshot sends a Reset and the bucket's keys at one revision, which it
// returns.
func (e *Engine) snapshot(ctx context.Context, base string, fn func(kv.Event)) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(base)
	cursor := base
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(int64(e.pageSize)), clientv3.WithKeysOnly()}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		rctx, cancel := context.WithTimeout(ctx, e.cfg.RequestTimeout)
		resp, err := e.client.Get(rctx, cursor, opts...)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, e.wrap(err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
			fn(kv.Event{Reset: true})
		}
		for _, kv1 := range resp.Kvs {
			fn(kv.Event{Key: kv1.Key[len(base):], Snapshot: true})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		cursor = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// watch sends the bucket's creations and deletions after rev until the
// watch fails or ctx ends, and moves f's progress on with each answer.
func (e *Engine) watch(ctx context.Context, f *follower, base string, rev int64, fn func(kv.Event)) {
	wctx, cancel := context.WithCancel(watchContext(ctx))
	defer cancel()
	wch := e.client.Watch(wctx, base, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	for resp := range wch {
		if resp.Err() != nil {
			return
		}
		if resp.IsProgressNotify() {
			// Sent only once the watch has sent every event up to
			// the revision (etcd checks that the watcher is synced).
			e.setProgress(f, resp.Header.Revision)
			continue
		}
		// Not resp.Header.Revision: etcd may send it ahead of the
		// events (a watcher catching up in batches).
		var last int64
		for _, ev := range resp.Events {
			switch {
			case ev.Type == clientv3.EventTypeDelete:
				fn(kv.Event{Key: ev.Kv.Key[len(base):], Deleted: true})
			case ev.IsCreate():
				fn(kv.Event{Key: ev.Kv.Key[len(base):]})
			}
			last = ev.Kv.ModRevision
		}
		if last != 0 {
			e.setProgress(f, last)
		}
	}
}

// Sync implements kv.Shared: it waits until every follower has reached the
// highest revision this engine had committed when Sync was called. A commit
// outside the followed buckets makes no event, so Sync asks etcd for a
// progress notification (RequestProgress), again as long as it waits.
func (e *Engine) Sync(ctx context.Context) error {
	target := e.committed.Load()
	interval := 5 * time.Millisecond
	for {
		e.mu.Lock()
		behind := false
		for f := range e.followers {
			if f.progress < target {
				behind = true
				break
			}
		}
		changed := e.changed
		e.mu.Unlock()
		if !behind {
			return nil
		}
		// An error (etcd away) is no answer: wait and ask again.
		rctx, cancel := context.WithTimeout(watchContext(ctx), e.cfg.RequestTimeout)
		_ = e.client.RequestProgress(rctx)
		cancel()
		t := time.NewTimer(interval)
		select {
		case <-changed:
		case <-t.C:
			interval = min(2*interval, 250*time.Millisecond)
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}
