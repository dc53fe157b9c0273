// Package store owns the bbolt file: buckets, records and every transaction.
//
// Each exported method of Store is exactly one transaction, so a crash at any
// moment leaves every VM in exactly one state and never hands a VM out twice.
// Methods are domain operations (checkout, return, list by state), never
// bucket access, so that a second implementation (etcd) stays possible.
// Store imports no other package of this project.
package store

import "time"

// State is a VM's place in its lifecycle.
type State string

// VM states, in lifecycle order.
const (
	StatePending   State = "pending"   // clone started, not yet ready
	StateReady     State = "ready"     // ready check passed, waiting for checkout
	StateRunning   State = "running"   // checked out
	StateCompleted State = "completed" // to be destroyed in vSphere
	StateDestroyed State = "destroyed" // gone from vSphere; record kept for Store.Retention
)

// LiveStates are the states that have a per-pool index.
var LiveStates = []State{StatePending, StateReady, StateRunning, StateCompleted}

// VM is the record of one virtual machine, keyed by Hostname.
type VM struct {
	Hostname    string            `json:"hostname"`
	Pool        string            `json:"pool"`
	Template    string            `json:"template"`
	CloneTarget string            `json:"clone_target,omitempty"` // cluster or resource pool it was cloned onto
	State       State             `json:"state"`
	Started     time.Time         `json:"started"`              // clone started (AddPending)
	Cloned      time.Time         `json:"cloned,omitzero"`      // clone task finished (MarkCloned)
	Ready       time.Time         `json:"ready,omitzero"`       // ready check passed
	CheckedOut  time.Time         `json:"checked_out,omitzero"` // ready → running
	Completed   time.Time         `json:"completed,omitzero"`   // entered completed
	Destroyed   time.Time         `json:"destroyed,omitzero"`   // entered destroyed
	Lifetime    int               `json:"lifetime,omitempty"`   // hours from checkout; 0 = the configured default
	User        string            `json:"user,omitempty"`       // token user that checked it out, "" if anonymous
	Tags        map[string]string `json:"tags,omitempty"`
	Snapshots   []Snapshot        `json:"snapshots,omitempty"`
	Disks       []Disk            `json:"disks,omitempty"`
	IP          string            `json:"ip,omitempty"`
	RequestID   string            `json:"request_id,omitempty"` // ondemand request that owns it
	Reason      string            `json:"reason,omitempty"`     // why it left ready/running/pending
}

// Job outcome states, used by Snapshot.State and Disk.State.
const (
	JobPending = "pending"
	JobDone    = "done"
	JobFailed  = "failed"
)

// JobStatus is the progress of the job that makes a snapshot or a disk.
// Snapshot and Disk embed it: in JSON its fields stand among theirs.
type JobStatus struct {
	State     string    `json:"state"` // JobPending, JobDone, JobFailed
	Requested time.Time `json:"requested"`
	Done      time.Time `json:"done,omitzero"`
	Error     string    `json:"error,omitempty"`
}

// finish records the outcome of the job at now.
func (j *JobStatus) finish(state string, now time.Time, msg string) {
	j.State, j.Done, j.Error = state, now, msg
}

// Snapshot is a snapshot requested on a VM and its outcome.
type Snapshot struct {
	Name string `json:"name"`
	JobStatus
	Reverts int `json:"reverts,omitempty"` // reverts completed
}

// Disk is an extra disk requested on a VM and its outcome.
type Disk struct {
	SizeGB int `json:"size_gb"`
	JobStatus
}

// JobKind names asynchronous work the manager carries out on a VM.
type JobKind string

// Job kinds.
const (
	JobSnapshot JobKind = "snapshot"
	JobRevert   JobKind = "revert"
	JobDisk     JobKind = "disk"
)

// Job is one queued asynchronous request (snapshot, revert, add disk).
type Job struct {
	ID        uint64    `json:"id"`
	Kind      JobKind   `json:"kind"`
	Hostname  string    `json:"hostname"`
	Snapshot  string    `json:"snapshot,omitempty"` // JobSnapshot, JobRevert
	SizeGB    int       `json:"size_gb,omitempty"`  // JobDisk
	Requested time.Time `json:"requested"`
}

// PoolCount asks for Count VMs of Pool.
type PoolCount struct {
	Pool  string `json:"pool"`
	Count int    `json:"count"`
}

// CheckoutRequest asks for VMs from one or more pools, all or nothing.
type CheckoutRequest struct {
	Pools    []PoolCount
	Lifetime int    // hours stored on each VM; 0 = default
	User     string // token user, "" if anonymous
	Quota    *Quota // limits of User, checked in the checkout's transaction; nil = none
}

// Token is an API token and its owner.
type Token struct {
	Token    string    `json:"token"`
	User     string    `json:"user"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// Override is a runtime change of a pool's configuration (POST /config/*).
// Nil or empty fields leave the configured value in force.
type Override struct {
	Size        *int   `json:"size,omitempty"`
	Template    string `json:"template,omitempty"`
	CloneTarget string `json:"clone_target,omitempty"`
}

// Ondemand request states.
const (
	RequestPending = "pending"
	RequestReady   = "ready"
	RequestFailed  = "failed"
	RequestDeleted = "deleted"
)

// Request is an ondemand request: VMs cloned for one caller, handed to it
// directly (they never enter the ready index).
type Request struct {
	ID        string              `json:"id"`
	Requested []PoolCount         `json:"requested"`
	Names     []string            `json:"names,omitempty"` // Names[i]: the pool or alias asked for that Requested[i] stands for
	User      string              `json:"user,omitempty"`
	Lifetime  int                 `json:"lifetime,omitempty"`
	Created   time.Time           `json:"created"`
	State     string              `json:"state"`
	Hosts     map[string][]string `json:"hosts,omitempty"` // pool → hostnames delivered (running)
	Error     string              `json:"error,omitempty"`
	// Quota limits User when the request is created (not stored).
	Quota *Quota `json:"-"`
}

// Durations is a count/sum/min/max of durations in seconds.
type Durations struct {
	Count int     `json:"count"`
	Sum   float64 `json:"sum"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
}

// Add returns d and o together: counts and sums added, the lower min and
// the higher max of those that count anything.
func (d Durations) Add(o Durations) Durations {
	if o.Count == 0 {
		return d
	} else if d.Count == 0 {
		return o
	}
	return Durations{Count: d.Count + o.Count, Sum: d.Sum + o.Sum, Min: min(d.Min, o.Min), Max: max(d.Max, o.Max)}
}

// DayRollup is one day's metrics, written in the same transaction as the
// state changes it counts. Date is YYYY-MM-DD in UTC.
type DayRollup struct {
	Date  string                    `json:"date"`
	Clone map[string]Durations      `json:"clone"` // pool → clone durations
	Boot  map[string]Durations      `json:"boot"`  // pool → boot durations
	Tags  map[string]map[string]int `json:"tags"`  // tag → value → count
}

// PoolCounts is the number of VMs per state of one pool, and the time the
// pool's newest VM became ready (zero if none since open).
type PoolCounts struct {
	Pending, Ready, Running, Completed int
	LastReady                          time.Time
}
