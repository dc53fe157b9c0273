// Package pool owns the VM lifecycle: Service (checkout, return, modify,
// snapshot and disk requests, ondemand requests) used by the API, and Manager
// (the reconcile loop that fills pools, checks readiness, enforces TTLs and
// lifetimes, destroys, and removes orphans). It defines Provider, the
// interface to the hypervisor that vsphere implements and tests fake.
package pool

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/internal/tomlx"
	"github.com/vmpooler/vmpooler/store"
)

// Config is the global [config] section plus the pools, with upstream's
// names and units (hours for lifetimes, minutes for TTLs and timeouts).
type Config struct {
	Domain                string   `toml:"domain"`
	Prefix                string   `toml:"prefix"`
	VMLifetime            int      `toml:"vm_lifetime"`                        // hours, default 24
	VMLifetimeAuth        int      `toml:"vm_lifetime_auth"`                   // hours, 0 = vm_lifetime
	MaxLifetimeUpperLimit int      `toml:"max_lifetime_upper_limit"`           // hours, 0 = none
	ReadyTTL              int      `toml:"ready_ttl"`                          // minutes, default 60
	Timeout               int      `toml:"timeout"`                            // minutes, default 15
	VMCheckTime           int      `toml:"vm_checktime"`                       // minutes, default 1
	TaskLimit             int      `toml:"task_limit"`                         // concurrent clones, default 10
	OndemandCloneLimit    int      `toml:"ondemand_clone_limit"`               // default 10
	OndemandRequestTTL    int      `toml:"ondemand_request_ttl"`               // minutes, default 5
	MaxOndemandPerRequest int      `toml:"max_ondemand_instances_per_request"` // default 10
	AllowedTags           []string `toml:"allowed_tags"`
	ExperimentalFeatures  bool     `toml:"experimental_features"`
	CheckLoopDelay        int      `toml:"check_loop_delay"` // seconds between reconcile passes, default 5
	DataTTL               int      `toml:"data_ttl"`         // hours a destroyed record is kept, default 168
	// JobTimeout bounds one attempt at a snapshot, revert or disk add,
	// task wait included (minutes, default 30). vsphere_timeout bounds
	// each round trip within it.
	JobTimeout int `toml:"job_timeout"`
	// CheckHostnameMismatch fails a ready VM whose guest reports another
	// hostname (upstream check_ready_vm_hostname_for_mismatch; default true).
	CheckHostnameMismatch *bool `toml:"check_ready_vm_hostname_for_mismatch"`
	// DNSCheck makes a new VM ready only once its name in its pool's
	// domain resolves to its IP (as upstream's ready check, which
	// connects to the name, did): clients that connect by name then never
	// get a VM whose name does not resolve yet. Default false.
	DNSCheck bool `toml:"dns_check"`
	// CheckoutWait is how long, in seconds, a checkout waits for VMs when
	// it does not say (?wait=); 0, the default, answers 503 at once as
	// upstream. MaxCheckoutWait caps any wait (default 300).
	CheckoutWait    int `toml:"checkout_wait"`
	MaxCheckoutWait int `toml:"max_checkout_wait"`
	// CloneTarget is upstream's global clone_target: the default of pools
	// that name none.
	CloneTarget string `toml:"clone_target"`
	// PurgeUnconfiguredResources destroys the VMs carrying this pooler's
	// marker in the folders of pools removed from the configuration
	// (upstream's name; off: they are logged once). Never another VM.
	PurgeUnconfiguredResources bool `toml:"purge_unconfigured_resources"`
	// MaxRunningPerUser caps the VMs one token user may hold (running,
	// or owed to pending ondemand requests); 0 = no cap.
	MaxRunningPerUser int `toml:"max_running_per_user,omitempty"`
	// CheckoutRequiresToken refuses checkouts without a token (401) when
	// [auth] is on, so that no checkout escapes the quotas; off by
	// default, as upstream (anonymous checkouts are not counted).
	CheckoutRequiresToken bool `toml:"checkout_requires_token"`
	// RateLimitPerIP and RateLimitPerToken cap requests per minute from
	// one client address or with one token (0 = no cap): 429 beyond.
	RateLimitPerIP    int          `toml:"rate_limit_per_ip,omitempty"`
	RateLimitPerToken int          `toml:"rate_limit_per_token,omitempty"`
	Pools             []PoolConfig `toml:"-"`
}

// PoolConfig is one [[pools]] entry.
type PoolConfig struct {
	Name                  string  `toml:"name"`
	Alias                 Aliases `toml:"alias"`
	Template              string  `toml:"template"`
	Folder                string  `toml:"folder"`
	Datastore             string  `toml:"datastore"`
	Datacenter            string  `toml:"datacenter"`
	CloneTarget           string  `toml:"clone_target"`
	Provider              string  `toml:"provider"` // default "vsphere"
	Size                  int     `toml:"size"`
	Timeout               int     `toml:"timeout"`   // minutes, 0 = global
	ReadyTTL              int     `toml:"ready_ttl"` // minutes, 0 = global
	Domain                string  `toml:"domain"`    // "" = global
	LinkedClone           *bool   `toml:"create_linked_clone"`
	ReadyCheck            string  `toml:"ready_check"`                 // "ssh" (tcp:22, default on real vCenter), "tcp:<port>", "tools", "none"
	CheckHostnameMismatch *bool   `toml:"check_hostname_for_mismatch"` // per-pool override of the global check
	DNSCheck              *bool   `toml:"dns_check"`                   // per-pool override of the global dns_check
	// SnapshotMemory snapshots the VM's memory too (default true, as
	// upstream), so that a revert finds the VM running; false for guests
	// whose memory image is too big (a revert then powers the VM on again).
	SnapshotMemory *bool `toml:"snapshot_memory"`
	// Network is the port group the clones' first NIC connects to
	// (upstream's pool network); "" keeps the template's.
	Network string `toml:"network"`
	// SnapshotMainMemIOBlockPages and SnapshotMainMemIOWait set the clones'
	// mainMem.ioBlockPages and mainMem.iowait (upstream's keys; faster
	// memory snapshots on big guests). nil leaves them unset.
	SnapshotMainMemIOBlockPages *IntString `toml:"snapshot_mainMem_ioBlockPages"`
	SnapshotMainMemIOWait       *IntString `toml:"snapshot_mainMem_iowait"`
	// MaxRunningPerUser caps one user's VMs of this pool; 0 = no cap.
	MaxRunningPerUser int `toml:"max_running_per_user,omitempty"`
}

// SnapshotWithMemory reports snapshot_memory (default true).
func (p PoolConfig) SnapshotWithMemory() bool {
	return p.SnapshotMemory == nil || *p.SnapshotMemory
}

// IntString is a whole number that TOML may give as a number or, as
// upstream's YAML often does, a string of digits.
type IntString int

// UnmarshalTOML accepts an integer or a string of digits.
func (n *IntString) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		*n = IntString(v)
	case string:
		i, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", v)
		}
		*n = IntString(i)
	default:
		return fmt.Errorf("want a whole number, got %v", v)
	}
	if *n < 0 {
		return fmt.Errorf("must not be negative (got %d)", *n)
	}
	return nil
}

// Aliases is a pool's alias list; TOML may give a string or a list.
type Aliases = tomlx.StringList

// CloneSpec says what to clone where.
type CloneSpec struct {
	Pool        string
	Name        string // the new VM's name and hostname
	Instance    string // this pooler's instance id, for the clone's ownership marker
	Template    string // path relative to <datacenter>/vm/
	Folder      string // path relative to <datacenter>/vm/
	Datastore   string
	Datacenter  string
	CloneTarget string // cluster or resource pool
	LinkedClone bool
}

// VMInfo is what one inventory listing returns per VM.
type VMInfo struct {
	Name          string
	PoweredOn     bool
	ToolsRunning  bool
	IP            string
	GuestHostname string
	Attributes    map[string]string // custom values / annotation fields
	Owner         Owner             // the ownership marker; zero when the VM has none
	Path          string            // inventory path, for messages ("" if the provider has none)
	// Unknown: the VM's host is disconnected or not responding, so its
	// guest data would be stale (IP, Tools and hostname are left empty).
	Unknown bool
}

// Owner is the ownership marker every clone carries in vCenter (the
// vsphere provider keeps it in the VM's extraConfig): the pooler instance
// that made it and its pool. The pooler destroys only VMs whose marker
// names its own instance (or an adopted one), or VMs its store knows.
type Owner struct {
	Instance string
	Pool     string
}

// Location names a VM for operations on it.
type Location struct {
	Pool       string
	Name       string
	Folder     string
	Datacenter string
	// Owners are the instance ids whose marker makes the VM this pooler's
	// to destroy; Known says the store has a record of it, which makes a VM
	// without a marker (cloned before markers existed) this pooler's too.
	Owners []string
	Known  bool
}

// Mine reports whether a VM with marker o at l may be powered off or
// destroyed: its marker names one of l.Owners, or it has no marker and
// l.Known. A VM marked by another instance is never this pooler's.
func (l Location) Mine(o Owner) bool {
	if o.Instance == "" {
		return l.Known
	}
	return slices.Contains(l.Owners, o.Instance)
}

// Provider is the hypervisor. Every method honours ctx's deadline and
// returns errors wrapping one of the Err* sentinels below when it can be
// classified (test with errors.Is).
type Provider interface {
	// Clone clones the template, powers the clone on and returns when the
	// clone task has finished. ErrExists, ErrNotFound (template/folder), ErrTransient.
	// When ctx ends first (its deadline, or the manager gave the VM up), the
	// clone's task is cancelled too, unless the cause of ctx's end is
	// ErrShutdown: then it is left to finish, for the next start (or
	// leader) to find its VM.
	Clone(ctx context.Context, spec CloneSpec) error
	// List returns every VM in a folder with one inventory call.
	// ErrNotFound if the folder does not exist.
	List(ctx context.Context, datacenter, folder string) ([]VMInfo, error)
	// Ready reports whether a listed VM passes the pool's ready check.
	Ready(ctx context.Context, vm VMInfo, check string) (bool, string, error)
	// Destroy powers the VM off if needed and deletes it, after checking
	// in the same read that loc.Mine(its marker) and that it is not a
	// template (ErrForeign otherwise: nothing is done). ErrNotFound if gone.
	Destroy(ctx context.Context, loc Location) error
	//
	// Snapshot, Revert and AddDisk wait for their task until ctx ends, and
	// are safe to call again after a call cut short: they find out what
	// the earlier call did before doing anything.
	//
	// Snapshot creates a snapshot named name (unique per job), of the
	// memory too when memory is set, quiescing the guest. A snapshot of
	// that name that already exists is success: an earlier attempt made it.
	Snapshot(ctx context.Context, loc Location, name string, memory bool) error
	// Revert reverts to the named snapshot (ErrNotFound if none) and
	// leaves a VM that was powered on powered on.
	Revert(ctx context.Context, loc Location, name string) error
	// AddDisk adds a thin-provisioned disk of sizeGB identified by id (the
	// job's stable identity): a disk with that id already on the VM is
	// success, so a repeated call never adds a second disk.
	AddDisk(ctx context.Context, loc Location, sizeGB int, id string) error
	// Annotate records key/values (pool, checkout user, ...) on the VM.
	Annotate(ctx context.Context, loc Location, values map[string]string) error
}

// Provider error classes.
var (
	ErrNotFound   = errors.New("not found")
	ErrExists     = errors.New("already exists")
	ErrPowerState = errors.New("invalid power state")
	ErrAuth       = errors.New("authentication failed")
	ErrTransient  = errors.New("vCenter unreachable or busy")
	ErrForeign    = errors.New("not created by this pooler")
	// ErrCapacity: vCenter lacks memory, CPU, storage or HA failover
	// capacity; such errors also wrap ErrTransient (retried with backoff).
	ErrCapacity = errors.New("vCenter is out of capacity")
	// ErrPermission: the vCenter user lacks a privilege (the message names
	// it); retrying does not help until an administrator grants it.
	ErrPermission = errors.New("permission denied")
	// ErrShutdown is the cause (context.Cause) of the contexts of a
	// manager's clones and jobs when it closes: what they started in
	// vCenter is left to finish.
	ErrShutdown = errors.New("the pool manager is shutting down")
)

// Defaults fills zero values with upstream's defaults. It is idempotent;
// the manager and the Service call it on every configuration they are
// given, so the rest of the code reads settings without fallbacks.
func (c *Config) Defaults() {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.VMLifetime, 24)
	def(&c.ReadyTTL, 60)
	def(&c.Timeout, 15)
	def(&c.VMCheckTime, 1)
	def(&c.TaskLimit, 10)
	def(&c.OndemandCloneLimit, 10)
	def(&c.OndemandRequestTTL, 5)
	def(&c.MaxOndemandPerRequest, 10)
	def(&c.CheckLoopDelay, 5)
	def(&c.DataTTL, int(store.DefaultRetention/time.Hour))
	def(&c.MaxCheckoutWait, 300)
	def(&c.JobTimeout, 30)
	for i := range c.Pools {
		p := &c.Pools[i]
		if p.Provider == "" {
			p.Provider = "vsphere"
		}
		def(&p.Timeout, c.Timeout)
		def(&p.ReadyTTL, c.ReadyTTL)
		if p.CloneTarget == "" {
			p.CloneTarget = c.CloneTarget
		}
		if p.Domain == "" {
			p.Domain = c.Domain
		}
	}
}

// CheckFolder reports why pool p's folder cannot be a pool folder, naming
// the key: every VM in a pool folder that this pooler did not make is left
// alone, but a folder shared with other VMs still invites mistakes, so the
// folder must be given, must not be the datacenter's root VM folder, and
// must not hold the pool's template.
func CheckFolder(p PoolConfig) error {
	folder := strings.Trim(p.Folder, "/")
	switch {
	case folder == "" || folder == ".":
		return errors.New("folder is required: the folder (below the datacenter's VM folder) that holds only this pool's VMs; the root VM folder cannot be a pool folder")
	case strings.Contains(folder, "//") || strings.Contains("/"+folder+"/", "/../") || strings.Contains("/"+folder+"/", "/./"):
		return fmt.Errorf("folder %q is not a clean inventory path (an empty, '.' or '..' element)", p.Folder)
	case p.Template != "" && path.Dir(strings.Trim(p.Template, "/")) == folder:
		return fmt.Errorf("folder %q holds the pool's template %q: put the template in another folder", p.Folder, p.Template)
	}
	return nil
}

// WithOverride returns the pool's settings with a runtime override
// (/config/*) applied: the one place that says what is in force, for the
// manager, /config and /status.
func (p PoolConfig) WithOverride(o store.Override) PoolConfig {
	if o.Size != nil {
		p.Size = *o.Size
	}
	if o.Template != "" {
		p.Template = o.Template
	}
	if o.CloneTarget != "" {
		p.CloneTarget = o.CloneTarget
	}
	return p
}

// Pool returns the named pool's config.
func (c *Config) Pool(name string) (PoolConfig, bool) {
	for _, p := range c.Pools {
		if p.Name == name {
			return p, true
		}
	}
	return PoolConfig{}, false
}

// Lifetime returns the effective lifetime in hours of a VM whose stored
// lifetime is stored (0 = default).
func (c *Config) Lifetime(stored int) int {
	if stored > 0 {
		return stored
	}
	return c.VMLifetime
}

// HostnameMismatchCheck reports whether pool p's ready VMs are failed
// when their guest reports another hostname (pool key, else global, else true).
func (c *Config) HostnameMismatchCheck(p PoolConfig) bool {
	switch {
	case p.CheckHostnameMismatch != nil:
		return *p.CheckHostnameMismatch
	case c.CheckHostnameMismatch != nil:
		return *c.CheckHostnameMismatch
	}
	return true
}

// DNSCheckFor says whether pool p's new VMs must resolve by name to be
// ready: its dns_check, else the global one; never without a domain.
func (c *Config) DNSCheckFor(p PoolConfig) bool {
	if p.Domain == "" {
		return false
	} else if p.DNSCheck != nil {
		return *p.DNSCheck
	}
	return c.DNSCheck
}

// Hours converts whole hours to a Duration.
func Hours(h int) time.Duration { return time.Duration(h) * time.Hour }

// Minutes converts whole minutes to a Duration.
func Minutes(m int) time.Duration { return time.Duration(m) * time.Minute }
