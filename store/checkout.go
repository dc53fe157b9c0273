package store

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// Checkout moves VMs ready → running, oldest ready first, all or nothing.
// The result is in request order. EEMPTY (naming the pool) if any pool is short;
// then nothing changes. EINVALID for an empty request, a bad pool name, a
// count below 1 or a negative lifetime.
//
// Concurrent checkouts share commits (see commit) or, on etcd, conflict
// and retry, which is why the transaction function below may run more
// than once and must start from scratch each time.
func (s *Store) Checkout(req CheckoutRequest) ([]VM, error) {
	if err := validCheckout(req); err != nil {
		return nil, err
	}
	if s.Engine != nil {
		defer s.lockPools(req.Pools)()
	}
	var out []VM
	err := s.update(func(tx kv.Tx, now time.Time, d counts) (err error) {
		out, err = checkout(tx, d, req, now, s.CheckoutWindow)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// validCheckout checks a request before any transaction.
func validCheckout(req CheckoutRequest) error {
	if len(req.Pools) == 0 {
		return errs.Errorf(errs.EINVALID, "no pools requested")
	} else if req.Lifetime < 0 {
		return errs.Errorf(errs.EINVALID, "lifetime must not be negative")
	}
	for _, pc := range req.Pools {
		if !validName(pc.Pool) {
			return errs.Errorf(errs.EINVALID, "bad pool name %q", pc.Pool)
		} else if pc.Count < 1 {
			return errs.Errorf(errs.EINVALID, "count for pool %s must be at least 1", pc.Pool)
		}
	}
	return nil
}

// checkout is Checkout inside tx. On EEMPTY the caller's transaction rolls
// back whatever earlier pools of the request already moved.
func checkout(tx kv.Tx, d counts, req CheckoutRequest, now time.Time, window int) ([]VM, error) {
	if err := checkQuota(tx, req.Quota, req.User, req.Pools); err != nil {
		return nil, err
	}
	var out []VM
	for _, pc := range req.Pools {
		// Keys are collected before any delete: never delete while a cursor
		// walks. A pool named twice finds its first VMs already gone.
		prefix := indexPrefix(pc.Pool, StateReady)
		keys, err := prefixKeys(tx, bucketPools, prefix, pc.Count+window)
		if err != nil {
			return nil, err
		} else if len(keys) < pc.Count {
			return nil, errs.Errorf(errs.EEMPTY, "pool %s has too few ready vms (%d requested)", pc.Pool, pc.Count)
		}
		keys = pick(keys, pc.Count)
		for _, k := range keys {
			vm, err := getVM(tx, string(k[len(prefix)+8:]))
			if err != nil {
				return nil, err
			}
			vm.Lifetime, vm.User = req.Lifetime, req.User
			if err := move(tx, d, &vm, StateRunning, now); err != nil {
				return nil, err
			}
			out = append(out, vm)
		}
	}
	return out, nil
}

// pick returns n of keys (oldest first, n <= len(keys)) chosen at random,
// in their order: with a checkout window, concurrent checkouts on other
// processes rarely want the same VM. Without one, keys has n entries.
func pick(keys [][]byte, n int) [][]byte {
	for len(keys) > n {
		i := rand.IntN(len(keys))
		keys = slices.Delete(keys, i, i+1)
	}
	return keys
}

// lockPools takes this process's lock of each pool of a checkout (in name
// order) and returns the function that releases them. On a shared engine
// a transaction that loses a race for a VM retries; checkouts of one pool
// from one process would otherwise all race for the same oldest VMs, so
// they take turns, and only checkouts from other processes race (rarely:
// see CheckoutWindow). The lock is for speed only: correctness rests on
// the transaction.
func (s *Store) lockPools(pools []PoolCount) func() {
	names := make([]string, 0, len(pools))
	for _, pc := range pools {
		names = append(names, pc.Pool)
	}
	slices.Sort(names)
	names = slices.Compact(names)
	locks := make([]*sync.Mutex, len(names))
	s.poolMu.Lock()
	if s.poolLocks == nil {
		s.poolLocks = map[string]*sync.Mutex{}
	}
	for i, name := range names {
		if s.poolLocks[name] == nil {
			s.poolLocks[name] = &sync.Mutex{}
		}
		locks[i] = s.poolLocks[name]
	}
	s.poolMu.Unlock()
	for _, l := range locks {
		l.Lock()
	}
	return func() {
		for _, l := range locks {
			l.Unlock()
		}
	}
}
