package etcd

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// tx is one attempt of a transaction (kv.Tx). Keys in its maps are full
// etcd keys.
type tx struct {
	e        *Engine
	fence    *Fence // when set, the commit also requires it (leader.go)
	readOnly bool
	rev      int64 // the revision every read is at; 0 before the first
	err      error // the first failed read

	reads  map[string]read   // point reads (Get, NextSequence)
	peeks  map[string][]byte // reads that are not compared (Peek)
	seen   map[string]int64  // mod revision of each key a Scan handed out
	spans  map[span]struct{} // key ranges Scans looked at
	writes map[string]write  // buffered Put and Delete
}

type read struct {
	val    []byte // nil: missing
	modRev int64  // 0: missing
}

type write struct {
	val []byte
	del bool
}

// span is [start, end) of etcd keys.
type span struct{ start, end string }

func (e *Engine) newTx(readOnly bool) *tx {
	return &tx{e: e, readOnly: readOnly, reads: map[string]read{}, peeks: map[string][]byte{}, seen: map[string]int64{},
		spans: map[span]struct{}{}, writes: map[string]write{}}
}

var errReadOnly = errors.New("etcd: write in a read-only transaction")

// fail keeps the first failure of a read and returns it.
func (t *tx) fail(err error) error {
	if t.err == nil {
		t.err = err
	}
	return t.err
}

// get reads keys at the transaction's revision, fixing it on the first read.
func (t *tx) get(key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	if t.err != nil {
		return nil, t.err
	}
	if t.rev != 0 {
		opts = append(opts, clientv3.WithRev(t.rev))
	}
	ctx, cancel := t.e.request()
	defer cancel()
	t.e.gets.Add(1)
	resp, err := t.e.client.Get(ctx, key, opts...)
	if err != nil {
		return nil, t.fail(t.e.wrap(err))
	}
	if t.rev == 0 {
		t.rev = resp.Header.Revision
	}
	return resp, nil
}

// pointRead returns the value of the full key, seeing buffered writes.
func (t *tx) pointRead(key string) ([]byte, error) {
	if w, ok := t.writes[key]; ok {
		if w.del {
			return nil, nil
		}
		return w.val, nil
	}
	if r, ok := t.reads[key]; ok {
		return r.val, nil
	}
	resp, err := t.get(key)
	if err != nil {
		return nil, err
	}
	var r read
	if len(resp.Kvs) > 0 {
		r = read{val: nonNil(resp.Kvs[0].Value), modRev: resp.Kvs[0].ModRevision}
	}
	t.reads[key] = r
	return r.val, nil
}

// nonNil returns v, or an empty slice for nil: a key that is there never
// reads as nil, even with an empty value.
func nonNil(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}

// readKey returns the etcd key of key in bucket for Get and Peek, which
// return no error: a bad bucket fails the transaction instead (ok false).
func (t *tx) readKey(bucket, key []byte) (k string, ok bool) {
	base, err := t.e.bucketBase(bucket)
	if err != nil {
		t.fail(err)
		return "", false
	}
	return base + string(key), true
}

// Get implements kv.Tx.
func (t *tx) Get(bucket, key []byte) []byte {
	k, ok := t.readKey(bucket, key)
	if !ok {
		return nil
	}
	v, _ := t.pointRead(k)
	return v
}

// Peek implements kv.Tx: a read at the transaction's revision that the
// commit does not compare (the caller guards the value by a Scan).
func (t *tx) Peek(bucket, key []byte) []byte {
	k, ok := t.readKey(bucket, key)
	if !ok {
		return nil
	}
	if w, ok := t.writes[k]; ok {
		if w.del {
			return nil
		}
		return w.val
	} else if r, ok := t.reads[k]; ok {
		return r.val
	} else if v, ok := t.peeks[k]; ok {
		return v
	}
	resp, err := t.get(k)
	if err != nil {
		return nil
	}
	var v []byte
	if len(resp.Kvs) > 0 {
		v = nonNil(resp.Kvs[0].Value)
	}
	t.peeks[k] = v
	return v
}

// Put implements kv.Tx.
func (t *tx) Put(bucket, key, value []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	base, err := t.e.bucketBase(bucket)
	if err != nil {
		return err
	}
	if len(key) == 0 {
		return fmt.Errorf("etcd: put of an empty key in bucket %s", bucket)
	}
	t.writes[base+string(key)] = write{val: nonNil(value)}
	return nil
}

// Delete implements kv.Tx.
func (t *tx) Delete(bucket, key []byte) error {
	if t.readOnly {
		return errReadOnly
	}
	base, err := t.e.bucketBase(bucket)
	if err != nil {
		return err
	}
	t.writes[base+string(key)] = write{del: true}
	return nil
}

// NextSequence implements kv.Tx: a point read and a put of the sequence
// key, so two transactions taking a number conflict.
func (t *tx) NextSequence(bucket []byte) (uint64, error) {
	if t.readOnly {
		return 0, errReadOnly
	}
	if err := checkBucket(bucket); err != nil {
		return 0, err
	}
	key := t.e.cfg.Prefix + "seq/" + string(bucket)
	v, err := t.pointRead(key)
	if err != nil {
		return 0, err
	}
	var n uint64
	if v != nil {
		if n, err = strconv.ParseUint(string(v), 10, 64); err != nil {
			return 0, errs.Errorf(errs.EINTERNAL, "etcd: sequence %s holds %q, not a number", key, v)
		}
	}
	n++
	t.writes[key] = write{val: []byte(strconv.FormatUint(n, 10))}
	return n, nil
}

// SetSequence implements kv.Tx: the sequence goes up to n (never down).
func (t *tx) SetSequence(bucket []byte, n uint64) error {
	if t.readOnly {
		return errReadOnly
	}
	if err := checkBucket(bucket); err != nil {
		return err
	}
	key := t.e.cfg.Prefix + "seq/" + string(bucket)
	v, err := t.pointRead(key)
	if err != nil {
		return err
	}
	if v != nil {
		cur, err := strconv.ParseUint(string(v), 10, 64)
		if err != nil {
			return errs.Errorf(errs.EINTERNAL, "etcd: sequence %s holds %q, not a number", key, v)
		} else if cur >= n {
			return nil
		}
	}
	t.writes[key] = write{val: []byte(strconv.FormatUint(n, 10))}
	return nil
}

// Scan implements kv.Tx. It pages through etcd (a page at a time, only as
// far as fn goes) and merges the buffered writes of the range in.
func (t *tx) Scan(bucket, prefix, from []byte, fn func(k, v []byte) (bool, error)) error {
	base, err := t.e.bucketBase(bucket)
	if err != nil {
		return t.fail(err)
	}
	if t.err != nil {
		return t.err
	}
	start := base + string(prefix)
	end := clientv3.GetPrefixRangeEnd(start)
	if from != nil && bytes.Compare(from, prefix) > 0 {
		start = base + string(from)
	}
	if start >= end {
		return nil
	}

	r := t.scanRange(start, end)
	for {
		key, val, found, err := r.next()
		if err != nil {
			return err
		} else if !found {
			t.spans[span{start, end}] = struct{}{} // ran out: the whole range
			return nil
		}
		ok, err := fn([]byte(key[len(base):]), val)
		if err != nil {
			return err
		}
		if !ok {
			t.spans[span{start, key + "\x00"}] = struct{}{} // up to key, inclusive
			return nil
		}
	}
}

// scanRange is one Scan's walk of [start, end): etcd's keys, a page at a
// time, merged in key order with the transaction's buffered writes.
type scanRange struct {
	t       *tx
	end     string
	cursor  string             // where the next page starts
	page    []*mvccpb.KeyValue // etcd's keys fetched and not yet taken
	more    bool               // etcd may have keys after page
	overlay []string           // the buffered writes in range not yet taken, sorted
}

func (t *tx) scanRange(start, end string) *scanRange {
	r := &scanRange{t: t, end: end, cursor: start, more: true}
	for k := range t.writes {
		if k >= start && k < end {
			r.overlay = append(r.overlay, k)
		}
	}
	slices.Sort(r.overlay)
	return r
}

// fetch reads the next page of etcd's keys.
func (r *scanRange) fetch() error {
	resp, err := r.t.get(r.cursor, clientv3.WithRange(r.end), clientv3.WithLimit(int64(r.t.e.pageSize)))
	if err != nil {
		return err
	}
	r.page, r.more = resp.Kvs, resp.More && len(resp.Kvs) > 0
	if len(r.page) > 0 {
		r.cursor = string(r.page[len(r.page)-1].Key) + "\x00"
	}
	return nil
}

// next returns the next key in the range and its value as the transaction
// sees it (a buffered write wins; a buffered delete hides the key), noting
// the mod revision of each key read from etcd for the commit's compares.
// found is false at the end of the range.
func (r *scanRange) next() (key string, val []byte, found bool, err error) {
	for {
		if len(r.page) == 0 && r.more {
			if err := r.fetch(); err != nil {
				return "", nil, false, err
			}
		}
		switch {
		case len(r.page) == 0 && len(r.overlay) == 0:
			return "", nil, false, nil
		case len(r.overlay) == 0 || len(r.page) > 0 && string(r.page[0].Key) < r.overlay[0]:
			kv := r.page[0]
			r.page = r.page[1:]
			r.t.seen[string(kv.Key)] = kv.ModRevision
			return string(kv.Key), nonNil(kv.Value), true, nil
		}
		key = r.overlay[0]
		r.overlay = r.overlay[1:]
		if len(r.page) > 0 && string(r.page[0].Key) == key {
			r.t.seen[key] = r.page[0].ModRevision
			r.page = r.page[1:]
		}
		if w := r.t.writes[key]; !w.del {
			return key, w.val, true, nil
		}
	}
}

// commit sends the buffered writes in one Txn guarded by the compares of
// what the attempt read. It returns errRetry when a compare failed.
func (t *tx) commit() error {
	if len(t.writes) == 0 {
		return nil // read only: the reads were one snapshot
	}
	var cmps []clientv3.Cmp
	for _, k := range sortedKeys(t.reads) {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", t.reads[k].modRev))
	}
	for _, k := range sortedKeys(t.writes) {
		if _, read := t.reads[k]; read {
			continue
		}
		if m, ok := t.seen[k]; ok {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", m))
		}
	}
	spans := make([]span, 0, len(t.spans))
	for s := range t.spans {
		spans = append(spans, s)
	}
	slices.SortFunc(spans, func(a, b span) int {
		return cmp.Or(strings.Compare(a.start, b.start), strings.Compare(a.end, b.end))
	})
	for _, s := range spans {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.start).WithRange(s.end), "<", t.rev+1))
	}
	ops := make([]clientv3.Op, 0, len(t.writes))
	for _, k := range sortedKeys(t.writes) {
		if w := t.writes[k]; w.del {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			ops = append(ops, clientv3.OpPut(k, string(w.val)))
		}
	}
	if t.fence != nil {
		cmps = append(cmps, t.fence.cmp())
	}
	if n, m := max(len(cmps), len(ops)), t.e.cfg.MaxTxnOps; n > m {
		return errs.Errorf(errs.EINVALID,
			"the operation needs %d etcd operations (%d writes, %d compares) and max_txn_ops is %d; do less at once",
			n, len(ops), len(cmps), m)
	}
	ctx, cancel := t.e.request()
	defer cancel()
	t.e.txns.Add(1)
	resp, err := t.e.client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if errors.Is(err, context.DeadlineExceeded) && t.e.ctx.Err() == nil {
		// Sent, but no answer: it may have been applied (say so; a caller
		// that retries finds out what happened first).
		return errs.WithCause(t.e.at(err), errs.EUNAVAILABLE,
			"the database (etcd) did not answer the commit within %s; it may or may not have been applied", t.e.cfg.RequestTimeout)
	} else if err != nil {
		return t.e.wrap(err)
	}
	if !resp.Succeeded {
		if t.fence != nil {
			if err := t.fence.check(t.e); err != nil {
				return err // not a conflict: this replica does not lead any more
			}
		}
		return errRetry
	}
	t.e.noteCommit(resp.Header.Revision)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

var _ kv.Tx = (*tx)(nil)
