package pool

import "github.com/vmpooler/vmpooler/store"

// quota is the per-user limit of cfg for user: nil when user is anonymous
// or no max_running_per_user is set. The store checks it in the
// transaction that hands VMs out (or records an ondemand request).
func (cur *serviceState) quota(user string) *store.Quota {
	if user == "" {
		return nil
	}
	q := &store.Quota{Total: cur.cfg.MaxRunningPerUser}
	for _, p := range cur.cfg.Pools {
		if p.MaxRunningPerUser > 0 {
			if q.PerPool == nil {
				q.PerPool = make(map[string]int)
			}
			q.PerPool[p.Name] = p.MaxRunningPerUser
		}
	}
	if q.Total <= 0 && q.PerPool == nil {
		return nil
	}
	return q
}
