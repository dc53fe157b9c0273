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

// The running VMs of each user have an index of their own (schema 4), so
// that a quota check (quota.go) reads the VMs of the user who asks, not
// every running VM of every pool. Its key is the user's name, length
// first (a name may hold any byte), then the pool, a zero byte (pool names
// never hold one) and the hostname. index and unindex (record.go) keep
// it, as they keep the state indexes.

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

// splitUserVMKey splits an entry of the user index into its user, pool
// and hostname.
func splitUserVMKey(k []byte) (user, pool, host string, ok bool) {
	n, w := binary.Uvarint(k)
	if w <= 0 || n > uint64(len(k)-w) {
		return "", "", "", false
	}
	rest := k[w+int(n):]
	p, h, found := bytes.Cut(rest, []byte{0})
	if !found || len(p) == 0 || len(h) == 0 {
		return "", "", "", false
	}
	return string(k[w : w+int(n)]), string(p), string(h), true
}

// indexUsers adds the user index entry of every running VM whose state
// index entry is at or after from, at most limit of them, and returns
// where to go on from (nil when it reached the end). Adding an entry that
// is there is no change, so it may run again over the same VMs.
func indexUsers(tx kv.Tx, from []byte, limit int) (next []byte, err error) {
	var keys [][]byte // collected first: never write while a scan walks
	err = tx.Scan(bucketPools, nil, from, func(k, _ []byte) (bool, error) {
		pool, st, host, ok := splitIndexKey(k)
		if !ok {
			return false, fmt.Errorf("bad index key %x", k)
		} else if st != StateRunning {
			return true, nil
		} else if len(keys) == limit {
			next = slices.Clone(k)
			return false, nil
		}
		vm, err := decodeRecord(host, tx.Peek(bucketVMs, []byte(host)))
		if err != nil {
			return false, err
		} else if vm.Pool != pool {
			return false, fmt.Errorf("running index entry %x names pool %s, vm %s is in %s", k, pool, host, vm.Pool)
		}
		if uk := userVMKey(&vm); uk != nil {
			keys = append(keys, uk)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		if err := tx.Put(bucketUserVMs, k, []byte{}); err != nil {
			return nil, err
		}
	}
	return next, nil
}

// migrateUserIndex (schema 4) creates the user index of the running VMs
// and fills it.
func migrateUserIndex(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketUserVMs); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketUserVMs, err)
	}
	_, err := indexUsers(boltTx{tx}, nil, math.MaxInt)
	return err
}

// checkUserIndex checks that the user index holds exactly the running VMs
// of users: each entry names a VM running in that pool for that user (the
// other way round, checkRecords looks up each running VM's entry).
func checkUserIndex(tx kv.Tx) []error {
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
