package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// maxCheckErrors bounds the problems one Check reports.
const maxCheckErrors = 20

// Check runs bbolt's consistency check and the store's own invariants in one
// read transaction: every live VM record is in exactly one state index,
// that of its State and Pool, and every index entry points to a record in
// that state; the token, request and destroyed indexes match their records.
// Problems (or a panic of bbolt's on a damaged page) are an ErrCorrupt.
func (s *Store) Check() error {
	return s.view(func(tx *bolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		errs = append(errs, checkIndexes(tx)...)
		if len(errs) > maxCheckErrors {
			errs = append(errs[:maxCheckErrors], fmt.Errorf("and %d more problems", len(errs)-maxCheckErrors))
		}
		if len(errs) > 0 {
			return &corruptError{path: s.Path, cause: errors.Join(errs...)}
		}
		return nil
	})
}

// checkIndexes checks the store's invariants. Each record's index key is
// derived from the record, so "every record has its entry" plus "every
// entry has a matching record" means exactly one entry per record.
func checkIndexes(tx *bolt.Tx) []error {
	errs := checkRecords(tx)
	errs = append(errs, checkEntries(tx)...)
	errs = append(errs, checkTokens(tx)...)
	return append(errs, checkRequests(tx)...)
}

// checkRecords checks that every VM record has its index entry.
func checkRecords(tx *bolt.Tx) []error {
	var errs []error
	tx.Bucket(bucketVMs).ForEach(func(k, v []byte) error {
		var vm VM
		if err := decodeVM(v, &vm); err != nil {
			errs = append(errs, fmt.Errorf("vm %s: %v", k, err))
		} else if vm.Hostname != string(k) {
			errs = append(errs, fmt.Errorf("vm %s: record names %s", k, vm.Hostname))
		} else if b, key, err := indexOf(tx, &vm); err != nil {
			errs = append(errs, fmt.Errorf("vm %s: %v", k, err))
		} else if b.Get(key) == nil {
			errs = append(errs, fmt.Errorf("vm %s (%s, pool %s) missing from its index", k, vm.State, vm.Pool))
		}
		return nil
	})
	return errs
}

// checkEntries checks that every index entry is the one its record calls for.
func checkEntries(tx *bolt.Tx) []error {
	var errs []error
	match := func(k []byte, pool string, st State, host string) {
		vm, err := getVM(tx, host)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s index entry %x: %v", st, k, err))
			return
		}
		_, want, _ := indexOf(tx, &vm)
		if vm.State != st || (st != StateDestroyed && vm.Pool != pool) || !bytes.Equal(k, want) {
			errs = append(errs, fmt.Errorf("%s index entry %x (pool %s) does not match vm %s (%s, pool %s)",
				st, k, pool, vm.Hostname, vm.State, vm.Pool))
		}
	}
	tx.Bucket(bucketPools).ForEach(func(k, _ []byte) error {
		if pool, st, host, ok := splitIndexKey(k); ok && live(st) {
			match(k, pool, st, host)
		} else {
			errs = append(errs, fmt.Errorf("bad index key %x", k))
		}
		return nil
	})
	tx.Bucket(bucketDestroyed).ForEach(func(k, _ []byte) error {
		match(k, "", StateDestroyed, keyName(k))
		return nil
	})
	return errs
}

// checkTokens checks that tokens and tokens_by_user match one to one.
func checkTokens(tx *bolt.Tx) []error {
	var errs []error
	n := 0
	tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
		var t Token
		if err := json.Unmarshal(v, &t); err != nil {
			errs = append(errs, fmt.Errorf("token %x: %v", k, err))
		} else if !bytes.Equal(k, tokenKey(t.Token)) || tx.Bucket(bucketTokensUser).Get(userKey(&t)) == nil {
			errs = append(errs, fmt.Errorf("token %x of user %s: bad key or missing from the user index", k, t.User))
		}
		n++
		return nil
	})
	if m := tx.Bucket(bucketTokensUser).Stats().KeyN; m != n {
		errs = append(errs, fmt.Errorf("%d tokens but %d user index entries", n, m))
	}
	return errs
}

// checkRequests checks that requests_pending holds exactly the pending requests.
func checkRequests(tx *bolt.Tx) []error {
	var errs []error
	n := 0
	tx.Bucket(bucketRequests).ForEach(func(k, v []byte) error {
		var r Request
		if err := json.Unmarshal(v, &r); err != nil {
			errs = append(errs, fmt.Errorf("request %s: %v", k, err))
			return nil
		}
		in := tx.Bucket(bucketReqsPending).Get(timeKey(r.Created, r.ID)) != nil
		if in != (r.State == RequestPending) {
			errs = append(errs, fmt.Errorf("request %s is %s; in the pending index: %v", k, r.State, in))
		}
		if in {
			n++
		}
		return nil
	})
	if m := tx.Bucket(bucketReqsPending).Stats().KeyN; m != n {
		errs = append(errs, fmt.Errorf("%d pending requests but %d pending index entries", n, m))
	}
	return errs
}
