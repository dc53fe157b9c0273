package store

import (
	"fmt"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// Quota limits how many VMs one user may hold: running VMs plus those
// still owed to the user's pending ondemand requests. It is checked inside
// the transaction that hands VMs out, so concurrent requests cannot
// overshoot it. A zero limit is no limit.
type Quota struct {
	Total   int            // [config] max_running_per_user
	PerPool map[string]int // pool → its max_running_per_user
}

func (q *Quota) active() bool {
	if q == nil {
		return false
	}
	if q.Total > 0 {
		return true
	}
	for _, n := range q.PerPool {
		if n > 0 {
			return true
		}
	}
	return false
}

// QuotaError is a request refused by a Quota: 403, naming the limit and
// the user's count. Pool is "" for the overall limit.
type QuotaError struct {
	User      string
	Pool      string
	Limit     int
	Running   int // VMs the user holds now (running, or owed by ondemand requests)
	Requested int // VMs this request asked for (of Pool, when set)
}

func (e *QuotaError) Error() string {
	if e.Pool != "" {
		return fmt.Sprintf("quota exceeded: user %s holds %d vms of pool %s and asks for %d more; max_running_per_user for pool %s is %d",
			e.User, e.Running, e.Pool, e.Requested, e.Pool, e.Limit)
	}
	return fmt.Sprintf("quota exceeded: user %s holds %d vms and asks for %d more; max_running_per_user is %d",
		e.User, e.Running, e.Requested, e.Limit)
}

// Unwrap gives the error its code (EFORBIDDEN), message and details: the
// pool (if any), limit, running and requested.
func (e *QuotaError) Unwrap() error {
	var d []errs.Detail
	if e.Pool != "" {
		d = append(d, errs.Detail{Key: "pool", Value: e.Pool})
	}
	d = append(d, errs.Detail{Key: "limit", Value: e.Limit}, errs.Detail{Key: "running", Value: e.Running}, errs.Detail{Key: "requested", Value: e.Requested})
	return &errs.Error{Code: errs.EFORBIDDEN, Message: e.Error(), Details: d}
}

// usage counts user's running VMs and the VMs still owed to the user's
// pending ondemand requests, in all and per pool.
//
// It reads the user's sections of the user indexes (userindex.go), not
// the running VMs or pending requests of other users. A checkout or a
// request that gives user VMs adds an entry to a section read here, so
// concurrent ones by the same user conflict (etcd) or run one after the
// other (bbolt), and those of other users do not.
func usage(tx kv.Tx, user string) (total int, perPool map[string]int, err error) {
	perPool = make(map[string]int)
	err = tx.Scan(bucketUserVMs, userPrefix(user), nil, func(k, _ []byte) (bool, error) {
		_, pool, _, ok := splitUserVMKey(k)
		if !ok {
			return false, fmt.Errorf("bad user index key %x", k)
		}
		total++
		perPool[pool]++
		return true, nil
	})
	if err != nil {
		return 0, nil, err
	}
	err = tx.Scan(bucketUserReqs, userPrefix(user), nil, func(k, _ []byte) (bool, error) {
		_, rest, _ := splitUser(k)
		id := keyName(rest)
		r, err := decodeRequest(id, tx.Peek(bucketRequests, []byte(id)))
		if errs.ErrorCode(err) == errs.ENOTFOUND {
			return true, nil
		} else if err != nil {
			return false, err
		}
		if r.User != user || r.State != RequestPending {
			return true, nil
		}
		for _, pc := range r.Requested {
			owed := pc.Count - len(r.Hosts[pc.Pool])
			if owed > 0 {
				total += owed
				perPool[pc.Pool] += owed
			}
		}
		return true, nil
	})
	if err != nil {
		return 0, nil, err
	}
	return total, perPool, nil
}

// checkQuota refuses a request of want (pool → count) by user that would
// take the user past q.
func checkQuota(tx kv.Tx, q *Quota, user string, want []PoolCount) error {
	if user == "" || !q.active() {
		return nil
	}
	total, perPool, err := usage(tx, user)
	if err != nil {
		return err
	}
	asked := 0
	byPool := make(map[string]int)
	for _, pc := range want {
		asked += pc.Count
		byPool[pc.Pool] += pc.Count
	}
	if q.Total > 0 && total+asked > q.Total {
		return &QuotaError{User: user, Limit: q.Total, Running: total, Requested: asked}
	}
	for _, pc := range want {
		if lim := q.PerPool[pc.Pool]; lim > 0 && perPool[pc.Pool]+byPool[pc.Pool] > lim {
			return &QuotaError{User: user, Pool: pc.Pool, Limit: lim, Running: perPool[pc.Pool], Requested: byPool[pc.Pool]}
		}
	}
	return nil
}

// CheckQuota says whether user may ask for want under q now: nil, or the
// QuotaError that a checkout or request for it would get.
func (s *Store) CheckQuota(user string, q *Quota, want []PoolCount) error {
	return s.view(func(tx kv.Tx) error { return checkQuota(tx, q, user, want) })
}
