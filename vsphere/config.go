package vsphere

import (
	"fmt"
	"strings"
	"time"
)

// Config is the [providers.vsphere] section of vmpooler.toml.
type Config struct {
	// Server is the vCenter address: "host", "host:port" or a full URL
	// such as "https://host/sdk". Ignored when Simulator is set.
	Server string `toml:"server"`
	// Username and Password log in to vCenter. In simulator mode they are
	// the simulator's credentials (default "user"/"pass").
	Username string `toml:"username"`
	Password string `toml:"password"`
	// Insecure skips verification of vCenter's TLS certificate (logged as
	// a warning at start). Prefer CAFile or Thumbprint.
	Insecure bool `toml:"insecure"`
	// CAFile is a PEM bundle of the CA(s) that sign vCenter's certificate
	// (for a VMCA-signed lab vCenter: its root certificate), trusted besides
	// the system's roots.
	CAFile string `toml:"ca_file"`
	// Thumbprint pins vCenter's certificate by its SHA-256 (or SHA-1)
	// fingerprint, "AB:CD:..." as govc and the vSphere client show it.
	Thumbprint string `toml:"thumbprint"`
	// Datacenter is the default datacenter (name or inventory path) for
	// pools that do not name one. Empty means the only datacenter there is.
	Datacenter string `toml:"datacenter"`
	// Timeout is the deadline in seconds of each round trip to vCenter
	// (default 60). It does not bound the wait for a task: clones,
	// snapshots, reverts and disk adds are bounded by the caller's context
	// (the pool timeout, the job timeout).
	Timeout int `toml:"vsphere_timeout"`
	// LoginHoldoff is the time in seconds after vCenter refused the login
	// (wrong password) before the pooler tries again, so that it cannot
	// lock the service account. Default 300.
	LoginHoldoff int `toml:"login_holdoff"`
	// CreateFolders creates a pool's missing folder (and its parents) on
	// the first clone into it.
	CreateFolders bool `toml:"create_folders"`
	// CreateLinkedClones clones pools that do not say otherwise as linked
	// clones when their template allows it (a snapshot or delta disks).
	// Default true.
	CreateLinkedClones *bool `toml:"create_linked_clones"`
	// Simulator runs govmomi's vCenter simulator inside the process on a
	// random loopback port, creates every pool's template and folder in
	// it, and drives it like a real vCenter.
	Simulator bool `toml:"simulator"`
	// BootDelay is the time in seconds a simulated VM takes, after power
	// on, to report VMware Tools running, an IP and its hostname. Default
	// 1; fractions are allowed (0.2). Only used with Simulator.
	BootDelay float64 `toml:"boot_delay"`
	// IPFamily is the address family ready checks prefer when a guest
	// reports both: "ipv4" (default) or "ipv6".
	IPFamily string `toml:"ip_family"`
	// ReadyCheck is the ready check of pools that do not set one: "tools"
	// (tools running and an IP), "ssh" (that, plus a TCP connect to port
	// 22), "tcp:<port>" or "none" (powered on). Default "tools" on the
	// simulator, "ssh" on a real vCenter.
	ReadyCheck string `toml:"ready_check"`
	// CloudInit gives each clone cloud-init metadata for its VMware
	// datasource (guestinfo.metadata: instance-id and local-hostname, the
	// clone's name), so that a stock cloud-init template takes the name,
	// as guestinfo.hostname serves a boot script. Default false.
	CloudInit bool `toml:"cloud_init"`
}

// Default credentials of the simulator.
const (
	DefaultSimUser     = "user"
	DefaultSimPassword = "pass"
)

// Defaults returns a copy of c with zero values replaced by defaults.
func (c Config) Defaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 60
	}
	if c.CreateLinkedClones == nil {
		t := true
		c.CreateLinkedClones = &t
	}
	if c.BootDelay <= 0 {
		c.BootDelay = 1
	}
	if c.ReadyCheck == "" {
		c.ReadyCheck = "ssh"
		if c.Simulator {
			c.ReadyCheck = "tools"
		}
	}
	if c.Simulator {
		if c.Username == "" {
			c.Username = DefaultSimUser
		}
		if c.Password == "" {
			c.Password = DefaultSimPassword
		}
	}
	return c
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	if !c.Simulator && strings.TrimSpace(c.Server) == "" {
		return fmt.Errorf("vsphere: server is required unless simulator = true")
	}
	if !c.Simulator && c.Username == "" {
		return fmt.Errorf("vsphere: username is required unless simulator = true")
	}
	if c.Timeout < 0 {
		return fmt.Errorf("vsphere: vsphere_timeout must not be negative")
	}
	if c.LoginHoldoff < 0 {
		return fmt.Errorf("[providers.vsphere] login_holdoff must not be negative")
	}
	if c.BootDelay < 0 {
		return fmt.Errorf("vsphere: boot_delay must not be negative")
	}
	if c.IPFamily != "" && c.IPFamily != "ipv4" && c.IPFamily != "ipv6" {
		return fmt.Errorf("[providers.vsphere] ip_family %q: want ipv4 or ipv6", c.IPFamily)
	}
	if c.ReadyCheck != "" {
		if _, err := parseCheck(c.ReadyCheck); err != nil {
			return err
		}
	}
	return nil
}

// Redacted returns a copy of c with the password replaced by "********",
// for logs and /config.
func (c Config) Redacted() Config {
	if c.Password != "" {
		c.Password = "********"
	}
	return c
}

// LinkedClones reports create_linked_clones (default true).
func (c Config) LinkedClones() bool {
	return c.CreateLinkedClones == nil || *c.CreateLinkedClones
}

func (c Config) callTimeout() time.Duration {
	if c.Timeout <= 0 {
		return 60 * time.Second
	}
	return time.Duration(c.Timeout) * time.Second
}

func (c Config) loginHoldoff() time.Duration {
	if c.LoginHoldoff <= 0 {
		return 5 * time.Minute
	}
	return time.Duration(c.LoginHoldoff) * time.Second
}

func (c Config) bootDelay() time.Duration {
	if c.BootDelay <= 0 {
		return time.Second
	}
	return time.Duration(c.BootDelay * float64(time.Second))
}
