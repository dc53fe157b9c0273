package store

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// maxNameLen bounds hostnames and pool names (a DNS name's limit), far
// below bbolt's key limit.
const maxNameLen = 255

// AddPending records a new VM in state pending (Started = now).
// ECONFLICT if a record with that hostname exists (even destroyed).
func (s *Store) AddPending(vm VM) error {
	if err := checkNewVM(vm); err != nil {
		return err
	}
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		return addPending(tx, d, vm, now)
	})
}

// checkNewVM validates the names of a VM about to be recorded.
func checkNewVM(vm VM) error {
	if vm.Hostname == "" || len(vm.Hostname) > maxNameLen {
		return errs.Errorf(errs.EINVALID, "a vm needs a hostname of at most %d bytes", maxNameLen)
	} else if !validName(vm.Pool) {
		return errs.Errorf(errs.EINVALID, "bad pool name %q", vm.Pool)
	}
	return nil
}

// addPending is AddPending inside tx.
func addPending(tx kv.Tx, d counts, vm VM, now time.Time) error {
	if tx.Get(bucketVMs, []byte(vm.Hostname)) != nil {
		return errs.Errorf(errs.ECONFLICT, "vm %s already exists", vm.Hostname)
	}
	vm.State = StatePending
	vm.Started = now
	vm.Cloned, vm.Ready, vm.CheckedOut, vm.Completed, vm.Destroyed = time.Time{}, time.Time{}, time.Time{}, time.Time{}, time.Time{}
	if err := index(tx, d, &vm); err != nil {
		return err
	}
	return putVM(tx, &vm)
}

// pendingVM decodes the record of host, a VM in state pending. ENOTFOUND
// if unknown; ECONFLICT if not pending.
func pendingVM(tx kv.Tx, host string) (VM, error) {
	vm, err := getVM(tx, host)
	if err == nil && vm.State != StatePending {
		err = errs.Errorf(errs.ECONFLICT, "vm %s is %s, not pending", host, vm.State)
	}
	return vm, err
}

// MarkCloned records that the clone task of a pending VM finished.
func (s *Store) MarkCloned(host string) error {
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		vm, err := pendingVM(tx, host)
		if err != nil {
			return err
		}
		vm.Cloned = now
		return putVM(tx, &vm)
	})
}

// MarkReady moves a pending VM to ready (or, when it belongs to an ondemand
// request, straight to running and onto the request), storing ip and adding
// its clone (Cloned-Started) and boot (Ready-Cloned) durations to today's rollup.
// ENOTFOUND if unknown; ECONFLICT if not pending.
//
// Without MarkCloned, no clone duration is counted and the boot duration
// runs from Started. A VM of a request that is no longer pending, or that
// already has its VMs of this pool, goes to completed instead.
func (s *Store) MarkReady(host, ip string) error {
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		return markReady(tx, d, host, ip, now)
	})
}

// markReady is MarkReady inside tx.
func markReady(tx kv.Tx, d counts, host, ip string, now time.Time) error {
	vm, err := pendingVM(tx, host)
	if err != nil {
		return err
	}
	vm.IP = ip
	bootFrom := vm.Started
	if !vm.Cloned.IsZero() {
		bootFrom = vm.Cloned
		if err := addDuration(tx, now, "clone", vm.Pool, vm.Cloned.Sub(vm.Started)); err != nil {
			return err
		}
	}
	if err := addDuration(tx, now, "boot", vm.Pool, now.Sub(bootFrom)); err != nil {
		return err
	}
	d.readyAt(vm.Pool, now)
	if vm.RequestID != "" {
		vm.Ready = now
		return deliver(tx, d, &vm, now)
	}
	return move(tx, d, &vm, StateReady, now)
}

// Return moves a running VM to completed (DELETE /vm/<host>), if by may
// (Actor.Owns), in the transaction that checks it. ENOTFOUND if no such VM
// or it is not running.
func (s *Store) Return(host, reason string, by Actor) error {
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		vm, err := runningFor(tx, host, by)
		if err != nil {
			return err
		}
		vm.Reason = reason
		return move(tx, d, &vm, StateCompleted, now)
	})
}

// Fail moves a VM to completed with a reason, but only if it is still in
// state from (or in any live state when from is ""): a check that decided
// to fail a ready VM must not fail one that a checkout took meanwhile.
// ECONFLICT if the VM left from; ENOTFOUND if unknown or destroyed. A
// completed VM is left as it is (nil) when from is "" or completed.
func (s *Store) Fail(host string, from State, reason string) error {
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		vm, err := getVM(tx, host)
		if err != nil {
			return err
		}
		switch {
		case vm.State == StateDestroyed:
			return errs.Errorf(errs.ENOTFOUND, "vm %s is destroyed", host)
		case vm.State == StateCompleted && (from == "" || from == StateCompleted):
			return nil
		case from != "" && vm.State != from:
			return errs.Errorf(errs.ECONFLICT, "vm %s is %s, not %s", host, vm.State, from)
		}
		vm.Reason = reason
		return move(tx, d, &vm, StateCompleted, now)
	})
}

// Destroy moves a VM from any live state to destroyed, keeping the record
// for Retention. ENOTFOUND if unknown. Destroying a destroyed VM changes
// nothing (nil). An empty reason keeps the VM's earlier reason.
func (s *Store) Destroy(host, reason string) error {
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		vm, err := getVM(tx, host)
		if err != nil {
			return err
		} else if vm.State == StateDestroyed {
			return nil
		}
		if reason != "" {
			vm.Reason = reason
		}
		return move(tx, d, &vm, StateDestroyed, now)
	})
}

// Purge deletes destroyed records older than Retention and returns how many.
// Finished ondemand requests (ready, failed, deleted) created before then
// go too, so neither bucket grows for ever. On an engine with a limit per
// transaction (etcd) it works in batches of at most s.batch() records, each
// one transaction: a purge cut short leaves only whole records behind.
func (s *Store) Purge() (int, error) {
	total := 0
	for {
		var n int
		var more bool
		err := s.update(func(tx kv.Tx, now time.Time, d counts) error {
			cutoff := timeKey(now.Add(-s.Retention), "")
			var keys [][]byte // collected first: never delete while a scan walks
			err := tx.Scan(bucketDestroyed, nil, nil, func(k, _ []byte) (bool, error) {
				if len(k) < 8 || bytes.Compare(k[:8], cutoff) >= 0 {
					return false, nil
				} else if len(keys) == s.batch() {
					more = true
					return false, nil
				}
				keys = append(keys, slices.Clone(k))
				return true, nil
			})
			if err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.Delete(bucketDestroyed, k); err != nil {
					return err
				}
				if err := tx.Delete(bucketVMs, k[8:]); err != nil {
					return err
				}
			}
			n = len(keys)
			if more {
				return nil
			}
			more, err = purgeRequests(tx, now.Add(-s.Retention), s.batch()-n)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// VMChange is a PUT /vm/<host>: a lifetime in hours (0: unchanged), tags
// to merge, and an extra disk to queue (0: none).
type VMChange struct {
	Lifetime int
	Tags     map[string]string
	DiskGB   int
}

// Modify changes a running VM's lifetime (if lifetime > 0) and merges tags
// (counting each new tag value in today's rollup). Returns the new record.
// It is Change for anyone, without a disk.
func (s *Store) Modify(host string, lifetime int, tags map[string]string) (VM, error) {
	return s.Change(host, VMChange{Lifetime: lifetime, Tags: tags}, Anyone)
}

// Change applies ch to a running VM that by may change (Actor.Owns), in
// one transaction: lifetime, tags, and the disk with its job. Returns the
// new record. A tag is counted in today's rollup only when its value on
// the VM changes, at the cost of one read and one write per such tag.
// EINVALID for a negative lifetime or disk size, an empty tag name, one
// with a zero byte, or a name or value too long for the store; ENOTFOUND
// unless the VM is running (a tag set on a ready VM would follow it to its
// next user).
func (s *Store) Change(host string, ch VMChange, by Actor) (VM, error) {
	if ch.Lifetime < 0 {
		return VM{}, errs.Errorf(errs.EINVALID, "lifetime must not be negative")
	} else if ch.DiskGB < 0 {
		return VM{}, errs.Errorf(errs.EINVALID, "disk size must be at least 1 GB")
	}
	for k, v := range ch.Tags {
		if k == "" || strings.ContainsRune(k, 0) || len(k) > maxTagLen || len(v) > maxTagValueLen {
			return VM{}, errs.Errorf(errs.EINVALID, "tag names must be 1 to %d bytes without a zero byte, values at most %d bytes", maxTagLen, maxTagValueLen)
		}
	}
	var out VM
	err := s.update(func(tx kv.Tx, now time.Time, d counts) error {
		vm, err := runningFor(tx, host, by)
		if err != nil {
			return err
		}
		if ch.Lifetime > 0 {
			vm.Lifetime = ch.Lifetime
		}
		for k, v := range ch.Tags {
			if old, ok := vm.Tags[k]; ok && old == v {
				continue
			}
			if vm.Tags == nil {
				vm.Tags = map[string]string{}
			}
			vm.Tags[k] = v
			if err := addTag(tx, now, k, v); err != nil {
				return err
			}
		}
		if ch.DiskGB > 0 {
			if err := addDisk(tx, &vm, ch.DiskGB, now); err != nil {
				return err
			}
		}
		out = vm
		return putVM(tx, &vm)
	})
	if err != nil {
		return VM{}, err
	}
	return out, nil
}

// Get returns a VM record. ENOTFOUND if unknown.
func (s *Store) Get(host string) (VM, error) {
	return read(s, func(tx kv.Tx) (VM, error) { return getVM(tx, host) })
}

// List returns the VMs of a pool in a state, in index order (oldest first).
// For StateDestroyed the order is that of destruction. EINVALID for an
// unknown state.
func (s *Store) List(pool string, state State) ([]VM, error) {
	if !live(state) && state != StateDestroyed {
		return nil, errs.Errorf(errs.EINVALID, "unknown state %q", state)
	}
	return read(s, func(tx kv.Tx) ([]VM, error) {
		if state == StateDestroyed {
			return listIndex(tx, bucketDestroyed, nil, func(vm *VM) bool { return vm.Pool == pool })
		}
		return listIndex(tx, bucketPools, indexPrefix(pool, state), nil)
	})
}

// ListPool returns every live (not destroyed) VM of a pool in one transaction,
// state by state in lifecycle order, each state oldest first.
func (s *Store) ListPool(pool string) ([]VM, error) {
	var out []VM
	err := s.view(func(tx kv.Tx) error {
		for _, st := range LiveStates {
			vms, err := listIndex(tx, bucketPools, indexPrefix(pool, st), nil)
			if err != nil {
				return err
			}
			out = append(out, vms...)
		}
		return nil
	})
	return out, err
}

// Pools returns the names of every pool with at least one live VM, sorted.
func (s *Store) Pools() ([]string, error) {
	var out []string
	err := s.view(func(tx kv.Tx) error {
		out = nil
		var from []byte
		for {
			k, err := firstKey(tx, bucketPools, nil, from)
			if err != nil || k == nil {
				return err
			}
			pool, _, _, ok := splitIndexKey(k)
			if !ok {
				return fmt.Errorf("bad index key %x", k)
			}
			out = append(out, pool)
			from = append([]byte(pool), 1) // past every key of pool
		}
	})
	return out, err
}
