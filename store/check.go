package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/vmpooler/vmpooler/store/kv"
	bolt "go.etcd.io/bbolt"
)

// maxCheckErrors bounds the problems one Check reports.
const maxCheckErrors = 20

// Check runs bbolt's consistency check and the store's own invariants in one
// read transaction: every live VM record is in exactly one state index,
// that of its State and Pool, and every index entry points to a record in
// that state; the token, request, destroyed and user indexes match their
// records.
// Problems (or a panic of bbolt's on a damaged page) are an ErrCorrupt.
func (s *Store) Check() error {
	if s.db == nil {
		return s.view(func(tx kv.Tx) error {
			return s.checkResult(checkIndexes(tx))
		})
	}
	return s.viewFile(func(tx *bolt.Tx) error {
		var problems []error
		for err := range tx.Check() {
			problems = append(problems, err)
		}
		return s.checkResult(append(problems, checkIndexes(boltTx{tx})...))
	})
}

// checkResult is nil for no problems, else an ErrCorrupt listing them.
func (s *Store) checkResult(errs []error) error {
	if len(errs) > maxCheckErrors {
		errs = append(errs[:maxCheckErrors], fmt.Errorf("and %d more problems", len(errs)-maxCheckErrors))
	}
	if len(errs) > 0 {
		return &corruptError{path: s.Path, cause: errors.Join(errs...)}
	}
	return nil
}

// checkIndexes checks the store's invariants. Each record's index key is
// derived from the record, so "every record has its entry" plus "every
// entry has a matching record" means exactly one entry per record.
func checkIndexes(tx kv.Tx) []error {
	errs := checkRecords(tx)
	errs = append(errs, checkEntries(tx)...)
	errs = append(errs, checkTokens(tx)...)
	errs = append(errs, checkRequests(tx)...)
	errs = append(errs, checkUserIndex(tx)...)
	return slices.DeleteFunc(errs, func(err error) bool { return err == nil })
}

// checkRecords checks that every VM record has its index entry.
func checkRecords(tx kv.Tx) []error {
	var errs []error
	err := tx.Scan(bucketVMs, nil, nil, func(k, v []byte) (bool, error) {
		var vm VM
		if err := decodeVM(v, &vm); err != nil {
			errs = append(errs, fmt.Errorf("vm %s: %v", k, err))
		} else if vm.Hostname != string(k) {
			errs = append(errs, fmt.Errorf("vm %s: record names %s", k, vm.Hostname))
		} else if b, key, err := indexOf(&vm); err != nil {
			errs = append(errs, fmt.Errorf("vm %s: %v", k, err))
		} else if tx.Get(b, key) == nil {
			errs = append(errs, fmt.Errorf("vm %s (%s, pool %s) missing from its index", k, vm.State, vm.Pool))
		} else if uk := userVMKey(&vm); uk != nil && tx.Get(bucketUserVMs, uk) == nil {
			errs = append(errs, fmt.Errorf("vm %s (running for %s, pool %s) missing from the user index", k, vm.User, vm.Pool))
		}
		return true, nil
	})
	return append(errs, err)
}

// checkEntries checks that every index entry is the one its record calls for.
func checkEntries(tx kv.Tx) []error {
	var errs []error
	match := func(k []byte, pool string, st State, host string) {
		vm, err := getVM(tx, host)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s index entry %x: %v", st, k, err))
			return
		}
		_, want, _ := indexOf(&vm)
		if vm.State != st || (st != StateDestroyed && vm.Pool != pool) || !bytes.Equal(k, want) {
			errs = append(errs, fmt.Errorf("%s index entry %x (pool %s) does not match vm %s (%s, pool %s)",
				st, k, pool, vm.Hostname, vm.State, vm.Pool))
		}
	}
	err := tx.Scan(bucketPools, nil, nil, func(k, _ []byte) (bool, error) {
		if pool, st, host, ok := splitIndexKey(k); ok && live(st) {
			match(k, pool, st, host)
		} else {
			errs = append(errs, fmt.Errorf("bad index key %x", k))
		}
		return true, nil
	})
	errs = append(errs, err)
	err = tx.Scan(bucketDestroyed, nil, nil, func(k, _ []byte) (bool, error) {
		match(k, "", StateDestroyed, keyName(k))
		return true, nil
	})
	return append(errs, err)
}

// checkTokens checks that tokens and tokens_by_user match one to one.
func checkTokens(tx kv.Tx) []error {
	return checkIndexed(tx, bucketTokens, bucketTokensUser, "token %x", "%d tokens but %d user index entries",
		func(k []byte, t *Token) (bool, error) {
			if t != nil && (!bytes.Equal(k, tokenKey(t.Token)) || tx.Get(bucketTokensUser, userKey(t)) == nil) {
				return true, fmt.Errorf("token %x of user %s: bad key or missing from the user index", k, t.User)
			}
			return true, nil // every token has an entry, even one that does not decode
		})
}

// checkRequests checks that requests_pending holds exactly the pending requests.
func checkRequests(tx kv.Tx) []error {
	return checkIndexed(tx, bucketRequests, bucketReqsPending, "request %s", "%d pending requests but %d pending index entries",
		func(k []byte, r *Request) (bool, error) {
			if r == nil {
				return false, nil
			}
			in := tx.Get(bucketReqsPending, timeKey(r.Created, r.ID)) != nil
			if in != (r.State == RequestPending) {
				return in, fmt.Errorf("request %s is %s; in the pending index: %v", k, r.State, in)
			} else if uk := userRequestKey(r); in && uk != nil && tx.Get(bucketUserReqs, uk) == nil {
				return in, fmt.Errorf("request %s (pending for %s) missing from the user index", k, r.User)
			}
			return in, nil
		})
}

// checkIndexed checks the JSON records of bucket against index. Each
// record is decoded into a T (one that does not decode is a problem, named
// as format does with its key: "token %x") and given to check, nil if it
// did not decode. check returns whether the record has an entry in index,
// and what it finds wrong. Then index must hold as many entries as records
// that have one; mismatch tells the two numbers otherwise.
func checkIndexed[T any](tx kv.Tx, bucket, index []byte, format, mismatch string,
	check func(k []byte, rec *T) (indexed bool, problem error)) []error {
	var errs []error
	n := 0
	err := tx.Scan(bucket, nil, nil, func(k, v []byte) (bool, error) {
		rec := new(T)
		if err := json.Unmarshal(v, rec); err != nil {
			errs = append(errs, fmt.Errorf(format+": %v", k, err))
			rec = nil
		}
		indexed, problem := check(k, rec)
		if problem != nil {
			errs = append(errs, problem)
		}
		if indexed {
			n++
		}
		return true, nil
	})
	m, err2 := countKeys(tx, index)
	if m != n {
		errs = append(errs, fmt.Errorf(mismatch, n, m))
	}
	return append(errs, err, err2)
}

// countKeys counts the keys of bucket.
func countKeys(tx kv.Tx, bucket []byte) (int, error) {
	n := 0
	err := tx.Scan(bucket, nil, nil, func(_, _ []byte) (bool, error) {
		n++
		return true, nil
	})
	return n, err
}
