package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// getRequest decodes request id. ENOTFOUND if there is none.
func getRequest(tx kv.Tx, id string) (Request, error) {
	return decodeRequest(id, tx.Get(bucketRequests, []byte(id)))
}

// decodeRequest decodes v, the record of request id. ENOTFOUND if v is nil.
func decodeRequest(id string, v []byte) (Request, error) {
	return decode(v, "request %s", id, unmarshalJSON[Request])
}

// putRequest writes r.
func putRequest(tx kv.Tx, r *Request) error {
	return putJSON(tx, bucketRequests, []byte(r.ID), r, "request "+r.ID)
}

// wanted returns how many VMs of pool r asks for in all.
func (r *Request) wanted(pool string) int {
	n := 0
	for _, pc := range r.Requested {
		if pc.Pool == pool {
			n += pc.Count
		}
	}
	return n
}

// complete reports whether r has every VM it asked for.
func (r *Request) complete() bool {
	for _, pc := range r.Requested {
		if len(r.Hosts[pc.Pool]) < r.wanted(pc.Pool) {
			return false
		}
	}
	return true
}

// deliver hands a VM that just became ready to its ondemand request: it goes
// straight to running with the request's lifetime and user, and the request
// becomes ready once it has all its VMs. A VM the request can no longer
// take (request gone, not pending, or this pool already delivered) goes to
// completed.
func deliver(tx kv.Tx, d counts, vm *VM, now time.Time) error {
	r, err := getRequest(tx, vm.RequestID)
	if errs.ErrorCode(err) == errs.ENOTFOUND {
		vm.Reason = fmt.Sprintf("ondemand request %s not found", vm.RequestID)
		return move(tx, d, vm, StateCompleted, now)
	} else if err != nil {
		return err
	}
	if r.State != RequestPending {
		vm.Reason = fmt.Sprintf("ondemand request %s is %s", r.ID, r.State)
		return move(tx, d, vm, StateCompleted, now)
	} else if len(r.Hosts[vm.Pool]) >= r.wanted(vm.Pool) {
		vm.Reason = fmt.Sprintf("ondemand request %s needs no more vms of pool %s", r.ID, vm.Pool)
		return move(tx, d, vm, StateCompleted, now)
	}
	vm.Lifetime, vm.User = r.Lifetime, r.User
	if err := move(tx, d, vm, StateRunning, now); err != nil {
		return err
	}
	if r.Hosts == nil {
		r.Hosts = map[string][]string{}
	}
	r.Hosts[vm.Pool] = append(r.Hosts[vm.Pool], vm.Hostname)
	if r.complete() {
		if err := setRequestState(tx, &r, RequestReady); err != nil {
			return err
		}
	}
	return putRequest(tx, &r)
}

// setRequestState changes r's state, taking it off the pending index when
// it leaves pending. The caller writes r.
func setRequestState(tx kv.Tx, r *Request, state string) error {
	if r.State == RequestPending && state != RequestPending {
		if err := tx.Delete(bucketReqsPending, timeKey(r.Created, r.ID)); err != nil {
			return err
		}
		if k := userRequestKey(r); k != nil {
			if err := tx.Delete(bucketUserReqs, k); err != nil {
				return err
			}
		}
	}
	r.State = state
	return nil
}

// CreateRequest stores a new ondemand request (State pending).
// Created is set to now when zero. EINVALID for an empty id, nothing
// requested, an empty pool, a count below 1 or a negative lifetime;
// ECONFLICT if the id exists.
func (s *Store) CreateRequest(r Request) error {
	if r.ID == "" {
		return errs.Errorf(errs.EINVALID, "a request needs an id")
	} else if len(r.Requested) == 0 {
		return errs.Errorf(errs.EINVALID, "request %s asks for no vms", r.ID)
	} else if r.Lifetime < 0 {
		return errs.Errorf(errs.EINVALID, "lifetime must not be negative")
	}
	for _, pc := range r.Requested {
		if pc.Pool == "" || pc.Count < 1 {
			return errs.Errorf(errs.EINVALID, "request %s: each pool needs a name and a count of at least 1", r.ID)
		}
	}
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		if tx.Get(bucketRequests, []byte(r.ID)) != nil {
			return errs.Errorf(errs.ECONFLICT, "request %s already exists", r.ID)
		}
		if err := checkQuota(tx, r.Quota, r.User, r.Requested); err != nil {
			return err
		}
		r.State, r.Hosts, r.Error = RequestPending, nil, ""
		if r.Created.IsZero() {
			r.Created = now
		}
		if err := tx.Put(bucketReqsPending, timeKey(r.Created, r.ID), []byte{}); err != nil {
			return err
		}
		if k := userRequestKey(&r); k != nil {
			if err := tx.Put(bucketUserReqs, k, []byte{}); err != nil {
				return err
			}
		}
		return putRequest(tx, &r)
	})
}

// GetRequest returns an ondemand request. ENOTFOUND if unknown.
func (s *Store) GetRequest(id string) (Request, error) {
	return read(s, func(tx kv.Tx) (Request, error) { return getRequest(tx, id) })
}

// PendingRequests returns the requests in state pending, oldest first.
func (s *Store) PendingRequests() ([]Request, error) {
	var out []Request
	err := s.view(func(tx kv.Tx) error {
		return tx.Scan(bucketReqsPending, nil, nil, func(k, _ []byte) (bool, error) {
			r, err := getRequest(tx, keyName(k))
			if err != nil {
				return false, fmt.Errorf("pending index entry %x: %v", k, err)
			}
			out = append(out, r)
			return true, nil
		})
	})
	return out, err
}

// FinishRequest sets a pending request's state (ready, failed or deleted) and
// error. Deleting moves its running VMs to completed. A deleted request is
// never overwritten.
//
// Setting the state a request already has, or anything on a deleted
// request, changes nothing (nil). A ready or failed request may only be
// deleted (ECONFLICT otherwise). EINVALID for another state; ENOTFOUND if
// unknown.
func (s *Store) FinishRequest(id, state, errMsg string) error {
	switch state {
	case RequestReady, RequestFailed, RequestDeleted:
	default:
		return errs.Errorf(errs.EINVALID, "bad request state %q", state)
	}
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		r, err := getRequest(tx, id)
		if err != nil {
			return err
		}
		switch {
		case r.State == RequestDeleted || r.State == state:
			return nil
		case r.State != RequestPending && state != RequestDeleted:
			return errs.Errorf(errs.ECONFLICT, "request %s is %s", id, r.State)
		}
		if err := setRequestState(tx, &r, state); err != nil {
			return err
		}
		if errMsg != "" {
			r.Error = errMsg
		}
		if state == RequestDeleted {
			if err := completeRequestVMs(tx, d, &r, now); err != nil {
				return err
			}
		}
		return putRequest(tx, &r)
	})
}

// completeRequestVMs moves the running VMs delivered to r to completed.
func completeRequestVMs(tx kv.Tx, d counts, r *Request, now time.Time) error {
	for _, hosts := range r.Hosts {
		for _, host := range hosts {
			vm, err := getVM(tx, host)
			if errs.ErrorCode(err) == errs.ENOTFOUND {
				continue // purged
			} else if err != nil {
				return err
			}
			if vm.State != StateRunning || vm.RequestID != r.ID {
				continue
			}
			vm.Reason = fmt.Sprintf("ondemand request %s deleted", r.ID)
			if err := move(tx, d, &vm, StateCompleted, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// purgeRequests deletes up to max requests that are no longer pending and
// were created before cutoff, and says whether more are left. Pending ones
// stay: the manager still owes them VMs.
func purgeRequests(tx kv.Tx, cutoff time.Time, max int) (more bool, err error) {
	var old [][]byte // collected first: never delete while a scan walks
	err = tx.Scan(bucketRequests, nil, nil, func(k, v []byte) (bool, error) {
		var r Request
		if err := json.Unmarshal(v, &r); err != nil {
			return false, fmt.Errorf("decode request %s: %w", k, err)
		}
		if r.State != RequestPending && r.Created.Before(cutoff) {
			if len(old) >= max {
				more = true
				return false, nil
			}
			old = append(old, slices.Clone(k))
		}
		return true, nil
	})
	if err != nil {
		return false, err
	}
	for _, k := range old {
		if err := tx.Delete(bucketRequests, k); err != nil {
			return false, err
		}
	}
	return more, nil
}
