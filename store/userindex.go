package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"

	"github.com/vmpooler/vmpooler/store/kv"
	bolt "go.etcd.io/bbolt"
)

// The running VMs and the pending ondemand requests of each user have
// indexes of their own (schema 4), so that a quota check (quota.go) reads
// what the user who asks holds, not every running VM of every pool and
// every pending request. Their keys start with the user's name, length
// first (a name may hold any byte). A VM's entry goes on with the pool, a
// zero byte (pool names never hold one) and the hostname: index and
// unindex (record.go) keep it, as they keep the state indexes. A
// request's goes on with its pending index key: CreateRequest and
// setRequestState keep it, as they keep the pending index.

// userPrefix is the prefix of the keys of user's entries.
func userPrefix(user string) []byte {
	return append(binary.AppendUvarint(nil, uint64(len(user))), user...)
}

// userVMKey is vm's entry in the user index: nil unless vm is running
// for a user (an anonymous checkout has no quota to count against).
func userVMKey(vm *VM) []byte {
	if vm.State != StateRunning || vm.User == "" {
		return nil
	}
	k := userPrefix(vm.User)
	k = append(k, vm.Pool...)
	k = append(k, 0)
	return append(k, vm.Hostname...)
}

// userRequestKey is r's entry in the index of pending requests by user:
// nil for a request without a user (an anonymous one has no quota).
func userRequestKey(r *Request) []byte {
	if r.User == "" {
		return nil
	}
	return append(userPrefix(r.User), timeKey(r.Created, r.ID)...)
}

// splitUser splits a key of either user index into the user and the rest.
func splitUser(k []byte) (user string, rest []byte, ok bool) {
	n, w := binary.Uvarint(k)
	if w <= 0 || n > uint64(len(k)-w) {
		return "", nil, false
	}
	return string(k[w : w+int(n)]), k[w+int(n):], true
}

// splitUserVMKey splits an entry of the user index into its user, pool
// and hostname.
func splitUserVMKey(k []byte) (user, pool, host string, ok bool) {
	user, rest, ok := splitUser(k)
	p, h, found := bytes.Cut(rest, []byte{0})
	if !ok || !found || len(p) == 0 || len(h) == 0 {
		return "", "", "", false
	}
	return user, string(p), string(h), true
}

// indexUsers adds the user index entry of every running VM whose state
// index entry is at or after from, at most limit of them, and returns
// where to go on from (nil when it reached the end). Adding an entry that
// is there is no change, so it may run again over the same VMs.
func indexUsers(tx kv.Tx, from []byte, limit int) ([]byte, error) {
	return fillIndex(tx, bucketPools, bucketUserVMs, from, limit, func(k []byte) ([]byte, bool, error) {
		pool, st, host, ok := splitIndexKey(k)
		if !ok {
			return nil, false, fmt.Errorf("bad index key %x", k)
		} else if st != StateRunning {
			return nil, true, nil
		}
		vm, err := decodeRecord(host, tx.Peek(bucketVMs, []byte(host)))
		if err != nil {
			return nil, false, err
		} else if vm.Pool != pool {
			return nil, false, fmt.Errorf("running index entry %x names pool %s, vm %s is in %s", k, pool, host, vm.Pool)
		}
		return userVMKey(&vm), false, nil
	})
}

// indexUserRequests is indexUsers for the pending requests.
func indexUserRequests(tx kv.Tx, from []byte, limit int) ([]byte, error) {
	return fillIndex(tx, bucketReqsPending, bucketUserReqs, from, limit, func(k []byte) ([]byte, bool, error) {
		id := keyName(k)
		r, err := decodeRequest(id, tx.Peek(bucketRequests, []byte(id)))
		if err != nil {
			return nil, false, err
		}
		return userRequestKey(&r), false, nil
	})
}

// fillIndex scans src from from and puts into dst the key entry makes of
// each of its keys (none when nil), for at most limit of them (those that
// entry skips do not count); it returns the first key it left for the
// next call, nil when it reached the end.
func fillIndex(tx kv.Tx, src, dst, from []byte, limit int, entry func(k []byte) (key []byte, skip bool, err error)) (next []byte, err error) {
	var keys [][]byte // collected first: never write while a scan walks
	n := 0
	err = tx.Scan(src, nil, from, func(k, _ []byte) (bool, error) {
		key, skip, err := entry(k)
		if err != nil || skip {
			return err == nil, err
		} else if n == limit {
			next = slices.Clone(k)
			return false, nil
		}
		n++
		if key != nil {
			keys = append(keys, key)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := tx.Put(dst, k, []byte{}); err != nil {
			return nil, err
		}
	}
	return next, nil
}

// userIndexers fill the user indexes, each in steps of at most limit
// entries (all at once on the bbolt file; in batches on etcd).
var userIndexers = []func(tx kv.Tx, from []byte, limit int) ([]byte, error){indexUsers, indexUserRequests}

// migrateUserIndex (schema 4) creates the user indexes of the running VMs
// and pending requests, and fills them.
func migrateUserIndex(tx *bolt.Tx) error {
	for _, b := range [][]byte{bucketUserVMs, bucketUserReqs} {
		if _, err := tx.CreateBucketIfNotExists(b); err != nil {
			return fmt.Errorf("create bucket %s: %w", b, err)
		}
	}
	for _, fill := range userIndexers {
		if _, err := fill(boltTx{tx}, nil, math.MaxInt); err != nil {
			return err
		}
	}
	return nil
}

// checkUserIndex checks that the user indexes hold exactly the running VMs
// and pending requests of users: each entry names a VM running in that
// pool for that user, or a pending request of that user (the other way
// round, checkRecords and checkRequests look up each one's entry).
func checkUserIndex(tx kv.Tx) []error {
	return append(checkUserVMs(tx), checkUserRequests(tx)...)
}

func checkUserRequests(tx kv.Tx) []error {
	var errs []error
	err := tx.Scan(bucketUserReqs, nil, nil, func(k, _ []byte) (bool, error) {
		user, rest, ok := splitUser(k)
		if !ok || len(rest) <= 8 {
			errs = append(errs, fmt.Errorf("bad user index key %x", k))
			return true, nil
		}
		id := keyName(rest)
		r, err := getRequest(tx, id)
		if err != nil {
			errs = append(errs, fmt.Errorf("user index entry of %s, request %s: %v", user, id, err))
		} else if uk := userRequestKey(&r); r.State != RequestPending || !bytes.Equal(uk, k) {
			errs = append(errs, fmt.Errorf("user index entry of %s does not match request %s (%s, user %q)", user, id, r.State, r.User))
		}
		return true, nil
	})
	return append(errs, err)
}

func checkUserVMs(tx kv.Tx) []error {
	var errs []error
	err := tx.Scan(bucketUserVMs, nil, nil, func(k, _ []byte) (bool, error) {
		user, pool, host, ok := splitUserVMKey(k)
		if !ok {
			errs = append(errs, fmt.Errorf("bad user index key %x", k))
			return true, nil
		}
		vm, err := getVM(tx, host)
		if err != nil {
			errs = append(errs, fmt.Errorf("user index entry of %s, pool %s: %v", user, pool, err))
		} else if vm.State != StateRunning || vm.User != user || vm.Pool != pool {
			errs = append(errs, fmt.Errorf("user index entry of %s, pool %s does not match vm %s (%s, user %q, pool %s)",
				user, pool, host, vm.State, vm.User, vm.Pool))
		}
		return true, nil
	})
	return append(errs, err)
}
