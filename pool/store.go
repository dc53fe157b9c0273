package pool

import (
	"github.com/vmpooler/vmpooler/store"
)

// Store is what the pool layer needs of the database: domain operations,
// each one transaction, never buckets or keys. *store.Store implements it
// on either engine (the bbolt file, or etcd for several replicas), and both
// pass the same test suite (package store).
type Store interface {
	Instance() string
	Adopted() []string
	Counts() map[string]store.PoolCounts
	CountsNow() map[string]store.PoolCounts // Counts without read-your-writes: a hint

	AddPending(vm store.VM) error
	AddRunning(vm store.VM) error
	MarkCloned(host string) error
	MarkReady(host, ip string) error
	Checkout(req store.CheckoutRequest) ([]store.VM, error)
	CheckQuota(user string, q *store.Quota, want []store.PoolCount) error
	Unassign(hosts []string) error
	Return(host, reason string, by store.Actor) error
	Change(host string, ch store.VMChange, by store.Actor) (store.VM, error)
	Fail(host string, from store.State, reason string) error
	Destroy(host, reason string) error
	Purge() (int, error)
	Get(host string) (store.VM, error)
	List(pool string, state store.State) ([]store.VM, error)
	ListPool(pool string) ([]store.VM, error)
	Pools() ([]string, error)

	RequestSnapshot(host, name string, by store.Actor) error
	RequestRevert(host, name string, by store.Actor) error
	RequestDisk(host string, sizeGB int, by store.Actor) error
	Jobs() ([]store.Job, error)
	FinishJob(id uint64, jobErr error) error

	CreateRequest(r store.Request) error
	GetRequest(id string) (store.Request, error)
	PendingRequests() ([]store.Request, error)
	FinishRequest(id, state, errMsg string) error

	Overrides() (map[string]store.Override, error)
	PutOverride(pool string, o store.Override) error
	ChangeOverrides(changes []store.OverrideChange) (map[string]store.Override, error)

	RememberFolders(pools map[string]store.PoolFolder) error
	PoolFolders() (map[string]store.PoolFolder, error)
	ForgetFolder(pool string) error

	Rollups(from, to string) ([]store.DayRollup, error)
	RollupDurations(from, to string) ([]store.DayRollup, error)
}

var _ Store = (*store.Store)(nil)
