package pool

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// actor is the caller as the store's ownership rule sees it: a VM checked
// out with a token may be changed only with a token of the same user; with
// auth off nobody is checked. The store applies the rule in the
// transaction that makes the change, so no other process can slip between.
func (c Caller) actor() store.Actor {
	return store.Actor{User: c.User, Checked: c.Auth}
}

// Return schedules a running VM for destruction (DELETE /vm/<host>).
// ENOTFOUND unless the VM is running.
func (s *Service) Return(host string, c Caller) error {
	if err := s.Store.Return(host, "returned", c.actor()); err != nil {
		return err
	}
	s.Kick()
	return nil
}

// Modification is a PUT /vm/<host> body: Lifetime (hours, nil = unchanged),
// Tags, and Failures found while decoding it (unknown keys, bad types).
type Modification struct {
	Lifetime    *int
	LifetimeArg string // as given, for messages
	Tags        map[string]string
	// Disk (GB, nil = none) queues an extra disk as POST /vm/<host>/disk/<n>
	// does: vmfloaty's "modify --disk" sends it in the PUT body.
	Disk     *int
	DiskArg  string // as given, for messages
	Failures []string
}

// failureError is EINVALID listing every problem of a PUT body, also under
// "failure".
func failureError(failures []string) error {
	return &errs.Error{Code: errs.EINVALID, Message: strings.Join(failures, " "),
		Details: []errs.Detail{{Key: "failure", Value: failures}}}
}

// Modify changes a running VM's lifetime and tags, and queues a disk when
// asked (ENOTFOUND for a VM that is not running). A lifetime or a disk needs
// a token when auth is on (401), and on a VM checked out with a token, that
// user's token (401/403). Tags alone need no token, on anyone's VM, as
// upstream: beaker tags the VMs it checked out with a token without one.
// A lifetime must be > 0, at most MaxLifetime and < max_lifetime_upper_limit
// when set; a disk 1..MaxDiskGB. Tags honour allowed_tags and [tagfilter].
func (s *Service) Modify(host string, m Modification, c Caller) error {
	cur := s.state()
	// A tag or lifetime set on a ready VM would follow it to its next user.
	vm, err := s.runningVM(host)
	if err != nil {
		return err
	}
	if err := m.needsToken(c); err != nil {
		return err
	} else if err := cur.validate(m); err != nil {
		return err
	} else if err := m.actor(c).Owns(&vm); err != nil {
		return err // the store checks again, in the change's transaction
	}
	return s.apply(cur, host, m, c)
}

// runningVM returns a running VM; ENOTFOUND for any other.
func (s *Service) runningVM(host string) (store.VM, error) {
	vm, err := s.Store.Get(host)
	if err != nil {
		return store.VM{}, err
	} else if vm.State != store.StateRunning {
		return store.VM{}, errs.Errorf(errs.ENOTFOUND, "VM %s is not running", host)
	}
	return vm, nil
}

// needsToken says EUNAUTHORIZED for a lifetime or a disk asked for without
// a token while auth is on.
func (m Modification) needsToken(c Caller) error {
	if !c.Auth || c.User != "" {
		return nil
	} else if m.Lifetime != nil {
		return errs.Errorf(errs.EUNAUTHORIZED, "changing the lifetime needs a token")
	} else if m.Disk != nil {
		return errs.Errorf(errs.EUNAUTHORIZED, "adding a disk needs a token")
	}
	return nil
}

// actor is who the ownership rule sees for m: the caller when m changes
// the lifetime or adds a disk, nobody for tags alone.
func (m Modification) actor(c Caller) store.Actor {
	if m.Lifetime == nil && m.Disk == nil {
		return store.Anyone
	}
	return c.actor()
}

// validate lists every problem of m: the decoding failures, then lifetime,
// disk and tags; a failureError when there is any.
func (cur *serviceState) validate(m Modification) error {
	failures := append([]string(nil), m.Failures...)
	if m.Lifetime != nil {
		failures = appendNonEmpty(failures, cur.lifetimeProblem(*m.Lifetime, m.LifetimeArg))
	}
	if m.Disk != nil && (*m.Disk < 1 || *m.Disk > MaxDiskGB) {
		failures = append(failures, fmt.Sprintf("You provided a disk size (%s) but it must be a whole number of GB from 1 to %d.", m.DiskArg, MaxDiskGB))
	}
	var bad []string
	for k := range m.Tags {
		if len(cur.allowed) > 0 && !cur.allowed[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		failures = append(failures, fmt.Sprintf("You provided unsupported tags (%s).", strings.Join(bad, ", ")))
	}
	if len(failures) > 0 {
		return failureError(failures)
	}
	return nil
}

// lifetimeProblem is what is wrong with a lifetime of hours ("" if nothing).
func (cur *serviceState) lifetimeProblem(hours int, arg string) string {
	if lim := cur.cfg.MaxLifetimeUpperLimit; hours <= 0 {
		return fmt.Sprintf("You provided a lifetime (%s) but you must provide a positive number.", arg)
	} else if lim > 0 && hours >= lim {
		return fmt.Sprintf("You provided a lifetime (%s) that exceeds the configured maximum of %d.", arg, lim)
	} else if hours > MaxLifetime {
		return fmt.Sprintf("You provided a lifetime (%s) that exceeds the maximum of %d hours.", arg, MaxLifetime)
	}
	return ""
}

func appendNonEmpty(list []string, s string) []string {
	if s == "" {
		return list
	}
	return append(list, s)
}

// apply stores a valid modification as one store change: lifetime, tags
// and the disk, with the ownership rule checked in the same transaction.
func (s *Service) apply(cur *serviceState, host string, m Modification, c Caller) error {
	ch := store.VMChange{Tags: cur.filterTags(m.Tags)}
	if m.Lifetime != nil {
		ch.Lifetime = *m.Lifetime
	}
	if m.Disk != nil {
		ch.DiskGB = *m.Disk
	}
	if _, err := s.Store.Change(host, ch, m.actor(c)); err != nil {
		return err
	}
	if m.Disk != nil {
		s.Kick()
	}
	return nil
}

// filterTags drops empty values and applies [tagfilter].
func (cur *serviceState) filterTags(tags map[string]string) map[string]string {
	if len(tags) == 0 {
		return nil
	}
	out := make(map[string]string, len(tags))
	for k, v := range tags {
		if re := cur.filters[k]; re != nil {
			if m := re.FindStringSubmatch(v); m != nil {
				v = strings.Join(m[1:], "")
			}
		}
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// jobTarget checks a snapshot, revert or disk request: token (401 when
// auth is on), VM exists and is live (404), ownership (403).
func (s *Service) jobTarget(host string, c Caller) error {
	if c.Auth && c.User == "" {
		return errs.Errorf(errs.EUNAUTHORIZED, "a token is required")
	}
	vm, err := s.Store.Get(host)
	if err != nil {
		return err
	} else if vm.State == store.StateDestroyed || vm.State == store.StateCompleted {
		return errs.Errorf(errs.ENOTFOUND, "VM %s is not live", host)
	}
	return c.actor().Owns(&vm) // the store checks again, in the job's transaction
}

// queueJob checks the job's target (jobTarget), stores the request with
// request(actor) and kicks the manager, which runs it.
func (s *Service) queueJob(host string, c Caller, request func(store.Actor) error) error {
	if err := s.jobTarget(host, c); err != nil {
		return err
	}
	if err := request(c.actor()); err != nil {
		return err
	}
	s.Kick()
	return nil
}

// Snapshot queues a snapshot and returns its generated 32-character name.
func (s *Service) Snapshot(host string, c Caller) (string, error) {
	name := randomName()
	err := s.queueJob(host, c, func(a store.Actor) error { return s.Store.RequestSnapshot(host, name, a) })
	if err != nil {
		return "", err
	}
	return name, nil
}

// Revert queues a revert to a taken snapshot. ENOTFOUND if there is none of that name.
func (s *Service) Revert(host, snapshot string, c Caller) error {
	return s.queueJob(host, c, func(a store.Actor) error { return s.Store.RequestRevert(host, snapshot, a) })
}

// MaxLifetime is the longest lifetime in hours a VM may be given (366
// days), whatever max_lifetime_upper_limit says: beyond it end times stop
// making sense (3,000,000 hours overflowed into the year 1784).
const MaxLifetime = 366 * 24

// MaxDiskGB is the largest extra disk a request may add.
const MaxDiskGB = 2048

// AddDisk queues an extra disk of sizeGB (1..MaxDiskGB).
func (s *Service) AddDisk(host string, sizeGB int, c Caller) error {
	if sizeGB < 1 || sizeGB > MaxDiskGB {
		return errs.Errorf(errs.EINVALID, "disk size must be from 1 to %d", MaxDiskGB)
	}
	return s.queueJob(host, c, func(a store.Actor) error { return s.Store.RequestDisk(host, sizeGB, a) })
}

// randomName returns 32 characters in the token alphabet (first a..y).
func randomName() string {
	return randomString("abcdefghijklmnopqrstuvwxy", hostnameAlphabet, 32)
}

// VMView is a VM record with what the API derives from it.
type VMView struct {
	store.VM
	Lifetime  int       // effective lifetime in hours
	Running   float64   // hours since checkout (until it left running), 2 dp
	Remaining float64   // hours left of the lifetime while running, 2 dp
	End       time.Time // checkout + effective lifetime (zero if never checked out)
	Domain    string    // the pool's domain
}

// Get returns a VM with its effective lifetime, running and remaining hours.
func (s *Service) Get(host string) (VMView, error) {
	vm, err := s.Store.Get(host)
	if err != nil {
		return VMView{}, err
	}
	v := VMView{VM: vm, Lifetime: s.Current().Lifetime(vm.Lifetime), Domain: s.Domain(vm.Pool)}
	if !vm.CheckedOut.IsZero() {
		until := s.Now()
		if !vm.Completed.IsZero() {
			until = vm.Completed
		} else if !vm.Destroyed.IsZero() {
			until = vm.Destroyed
		}
		v.Running = round2(until.Sub(vm.CheckedOut).Hours())
		v.End = vm.CheckedOut.Add(Hours(v.Lifetime))
		if vm.State == store.StateRunning {
			v.Remaining = round2(v.End.Sub(s.Now()).Hours())
		}
	}
	return v, nil
}

// Domain returns a pool's DNS domain ("" when none is configured).
func (s *Service) Domain(pool string) string {
	cfg := s.Current()
	if p, ok := cfg.Pool(pool); ok && p.Domain != "" {
		return p.Domain
	}
	return cfg.Domain
}

func round2(f float64) float64 {
	r := math.Round(f*100) / 100
	if r == 0 {
		return 0 // no -0
	}
	return r
}

// RunningByUser lists the running VMs checked out by user.
func (s *Service) RunningByUser(user string) ([]store.VM, error) {
	var hosts []store.VM
	for _, p := range s.Current().Pools {
		vms, err := s.Store.List(p.Name, store.StateRunning)
		if err != nil {
			return nil, err
		}
		for _, vm := range vms {
			if vm.User == user {
				hosts = append(hosts, vm)
			}
		}
	}
	return hosts, nil
}
