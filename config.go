package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/httpapi"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/vsphere"
)

// Config is the whole TOML file. Each package owns the struct of its own
// section; main only decodes and validates.
type Config struct {
	Global    GlobalConfig      `toml:"config"`
	Pools     []pool.PoolConfig `toml:"pools"`
	Providers Providers         `toml:"providers"`
	Auth      *auth.Config      `toml:"auth"`
	TagFilter map[string]string `toml:"tagfilter"`
	Etcd      *EtcdConfig       `toml:"etcd"`
	// Warnings name the keys of upstream's configuration that the file
	// carries and this pooler ignores (main logs them at start).
	Warnings []string `toml:"-"`

	file string // the file it was loaded from, absolute ("" if parsed from text)
}

// GlobalConfig is the [config] section: the manager's and API's settings
// plus the keys only main uses.
type GlobalConfig struct {
	pool.Config
	Listen   string `toml:"listen"`    // default 127.0.0.1:4567
	Database string `toml:"database"`  // default vmpooler.db
	SiteName string `toml:"site_name"` // prefixes the /status message; none by default, as upstream
	// DashboardPublic = false hides the dashboard's running list from
	// callers without a token when [auth] is on (default true: the list
	// is shown, user names only to logged-in callers).
	DashboardPublic *bool  `toml:"dashboard_public"`
	LogLevel        string `toml:"log_level"` // debug, info (default), warn, error
	// Scheduled backups: every BackupInterval hours a consistent copy of
	// the database goes to BackupDir, keeping the newest BackupKeep.
	BackupDir      string `toml:"backup_dir"`      // "" = no scheduled backups
	BackupInterval int    `toml:"backup_interval"` // hours, default 24
	BackupKeep     int    `toml:"backup_keep"`     // copies kept, default 7
	// Upstream keeps these vSphere keys under :config:; they apply to
	// [providers.vsphere] when that section does not set them.
	CreateFolders      *bool `toml:"create_folders"`
	CreateLinkedClones *bool `toml:"create_linked_clones"`
	// MaxConnections caps the API's simultaneous connections (default 512).
	MaxConnections int `toml:"max_connections"`
	// TrustedProxies are the reverse proxies (addresses or CIDR prefixes)
	// whose X-Forwarded-For names the client in the audit trail.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// dashboardPublic is dashboard_public with its default (true).
func (g *GlobalConfig) dashboardPublic() bool { return g.DashboardPublic == nil || *g.DashboardPublic }

// Providers is the [providers] section.
type Providers struct {
	Vsphere vsphere.Config `toml:"vsphere"`
	// Fake, when the section [providers.fake] is present, replaces vSphere
	// with an in-memory provider whose clones are instant (for load tests
	// of the API and the store; its VMs are lost when the process stops).
	Fake *FakeProviderConfig `toml:"fake"`
}

// FakeProviderConfig is the [providers.fake] section.
type FakeProviderConfig struct {
	// VMs are "<pool folder>/<name>" of VMs present at start without an
	// ownership marker: stand-ins for another pooler's VMs (migration tests).
	VMs []string `toml:"vms"`
}

// Environment variables that override the file, so it need not hold secrets.
var envOverrides = []struct {
	name string
	set  func(c *Config, v string)
}{
	{"VMPOOLER_VSPHERE_SERVER", func(c *Config, v string) { c.Providers.Vsphere.Server = v }},
	{"VMPOOLER_VSPHERE_USERNAME", func(c *Config, v string) { c.Providers.Vsphere.Username = v }},
	{"VMPOOLER_VSPHERE_PASSWORD", func(c *Config, v string) { c.Providers.Vsphere.Password = v }},
	{"VMPOOLER_LISTEN", func(c *Config, v string) { c.Global.Listen = v }},
	{"VMPOOLER_DATABASE", func(c *Config, v string) { c.Global.Database = v }},
	{"VMPOOLER_ETCD_USERNAME", func(c *Config, v string) { c.etcdSection().username = v }},
	{"VMPOOLER_ETCD_PASSWORD", func(c *Config, v string) { c.etcdSection().password = v }},
}

// etcdSection returns the [etcd] section, made empty if absent.
func (c *Config) etcdSection() *EtcdConfig {
	if c.Etcd == nil {
		c.Etcd = &EtcdConfig{}
	}
	return c.Etcd
}

// LoadConfig reads, defaults and validates the TOML file at path. Relative
// paths in the file (database, [auth] file, backup_dir, ca_file) are taken relative
// to the file's directory, paths from the environment relative to the
// working directory; every path in the result is absolute, so the working
// directory (systemd starts in /) never decides which database is used.
func LoadConfig(path string) (*Config, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := ParseConfig(abs, string(data), os.Getenv)
	if err != nil {
		return nil, err
	}
	c.file = abs
	for _, p := range c.paths() {
		if *p != "" {
			if *p, err = filepath.Abs(*p); err != nil {
				return nil, fmt.Errorf("config: %w", err)
			}
		}
	}
	return c, nil
}

// paths returns the file paths of the configuration.
func (c *Config) paths() []*string {
	ps := []*string{&c.Global.BackupDir, &c.Providers.Vsphere.CAFile}
	if !isEtcdURL(c.Global.Database) {
		ps = append(ps, &c.Global.Database)
	}
	if c.Etcd != nil {
		ps = append(ps, &c.Etcd.CAFile, &c.Etcd.CertFile, &c.Etcd.KeyFile)
	}
	if c.Auth != nil {
		ps = append(ps, &c.Auth.File)
		if c.Auth.LDAP != nil {
			ps = append(ps, &c.Auth.LDAP.CAFile)
		}
	}
	return ps
}

// ParseConfig decodes TOML text, applies the environment through getenv,
// fills defaults and validates. name is the file's path: it is used in
// messages, and relative paths in the text are joined to its directory.
func ParseConfig(name, text string, getenv func(string) string) (*Config, error) {
	var c Config
	md, err := toml.Decode(text, &c)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	var unknownKeys []string
	for _, k := range md.Undecoded() {
		if why := ignoredUpstreamKey(k.String()); why != "" {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s: upstream's key, ignored here (%s)", k, why))
		} else {
			unknownKeys = append(unknownKeys, k.String())
		}
	}
	var unknown error // reported with the validation errors, all at once
	if len(unknownKeys) > 0 {
		unknown = fmt.Errorf("unknown keys: %s", strings.Join(unknownKeys, ", "))
	}
	if c.Global.Database == "" {
		c.Global.Database = "vmpooler.db"
	}
	for _, p := range c.paths() {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(filepath.Dir(name), *p)
		}
	}
	for _, e := range envOverrides {
		if v := getenv(e.name); v != "" {
			e.set(&c, v)
		}
	}
	c.defaults()
	if err := errors.Join(unknown, c.validate()); err != nil {
		return nil, fmt.Errorf("config %s: %w", name, err)
	}
	return &c, nil
}

func (c *Config) defaults() {
	if c.Global.Listen == "" {
		c.Global.Listen = "127.0.0.1:4567"
	}
	if c.Global.BackupInterval == 0 {
		c.Global.BackupInterval = 24
	}
	if c.Global.BackupKeep == 0 {
		c.Global.BackupKeep = 7
	}
	c.applyUpstreamVsphereKeys()
	c.Global.Config.Pools = c.Pools
	c.Global.Config.Defaults()
	c.Pools = c.Global.Config.Pools
}

// validate reports every problem it finds, each naming its key.
func (c *Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	c.validateGlobal(bad)
	names := c.validatePools(bad)
	for _, p := range c.Pools {
		for _, a := range p.Alias {
			if names[a] {
				bad("[[pools]] %q: alias %q is the name of a pool", p.Name, a)
			} else if reservedKeys[a] {
				bad("[[pools]] %q: alias %q is a key of the API's answers beside the pools' (ok, domain, request_id, ready): choose another", p.Name, a)
			}
		}
	}
	tags := make([]string, 0, len(c.TagFilter))
	for k := range c.TagFilter {
		tags = append(tags, k)
	}
	sort.Strings(tags)
	for _, k := range tags {
		if _, err := regexp.Compile(c.TagFilter[k]); err != nil {
			bad("[tagfilter] %s: %v", k, err)
		}
	}
	if c.Auth != nil && c.Auth.Provider == "" {
		bad("[auth] provider is required (htpasswd, ldap or dummy)")
	}
	return errors.Join(errs...)
}

// badf records one problem of the configuration.
type badf func(format string, args ...any)

// validateGlobal checks the [config] section.
func (c *Config) validateGlobal(bad badf) {
	g := &c.Global.Config
	for _, f := range []struct {
		key string
		v   int
	}{
		{"vm_lifetime", g.VMLifetime}, {"vm_lifetime_auth", g.VMLifetimeAuth},
		{"max_lifetime_upper_limit", g.MaxLifetimeUpperLimit}, {"ready_ttl", g.ReadyTTL},
		{"timeout", g.Timeout}, {"vm_checktime", g.VMCheckTime}, {"task_limit", g.TaskLimit},
		{"ondemand_clone_limit", g.OndemandCloneLimit}, {"ondemand_request_ttl", g.OndemandRequestTTL},
		{"max_ondemand_instances_per_request", g.MaxOndemandPerRequest},
		{"check_loop_delay", g.CheckLoopDelay}, {"data_ttl", g.DataTTL}, {"job_timeout", g.JobTimeout},
		{"backup_interval", c.Global.BackupInterval}, {"backup_keep", c.Global.BackupKeep},
		{"max_connections", c.Global.MaxConnections},
		{"checkout_wait", g.CheckoutWait}, {"max_checkout_wait", g.MaxCheckoutWait},
		{"max_running_per_user", g.MaxRunningPerUser},
		{"rate_limit_per_ip", g.RateLimitPerIP}, {"rate_limit_per_token", g.RateLimitPerToken},
	} {
		if f.v < 0 {
			bad("[config] %s must not be negative (got %d)", f.key, f.v)
		}
	}
	if _, err := parseLevel(c.Global.LogLevel); err != nil {
		bad("[config] log_level must be debug, info, warn or error (got %q)", c.Global.LogLevel)
	}
	c.validateEtcd(bad)
	for _, f := range []struct {
		key string
		v   int
	}{{"vm_lifetime", g.VMLifetime}, {"vm_lifetime_auth", g.VMLifetimeAuth}} {
		if f.v > pool.MaxLifetime {
			bad("[config] %s must be at most %d hours (got %d)", f.key, pool.MaxLifetime, f.v)
		}
	}
	if _, err := httpapi.ParseTrustedProxies(c.Global.TrustedProxies); err != nil {
		bad("[config] trusted_proxies: %v (want addresses or CIDR prefixes)", err)
	}
	if !validPrefix(g.Prefix) {
		bad("[config] prefix %q: at most %d of a-z 0-9 '-', not starting with '-' (it begins every hostname)", g.Prefix, maxPrefixLen)
	}
}

// validatePools checks every [[pools]] entry and returns the pool names.
func (c *Config) validatePools(bad badf) map[string]bool {
	if len(c.Pools) == 0 {
		bad("[[pools]]: no pool configured")
	}
	names := map[string]bool{}
	for i, p := range c.Pools {
		where := fmt.Sprintf("[[pools]] #%d", i+1)
		if p.Name != "" {
			where = fmt.Sprintf("[[pools]] %q", p.Name)
		}
		switch {
		case p.Name == "":
			bad("%s: name is required", where)
		case names[p.Name]:
			bad("%s: name: duplicate pool name", where)
		case strings.ContainsAny(p.Name, "+/ "):
			bad("%s: name must not contain '+', '/' or spaces", where)
		case reservedKeys[p.Name]:
			bad("%s: name %q is a key of the API's answers beside the pools' (ok, domain, request_id, ready): choose another", where, p.Name)
		}
		names[p.Name] = true
		c.validatePool(p, where, bad)
	}
	c.validateFolders(bad)
	return names
}

// reservedKeys are the members of the checkout and ondemand answers that
// stand beside the pools' (upstream's shapes): a pool, or an alias, of
// that name would make an answer hold one key twice.
var reservedKeys = map[string]bool{"ok": true, "domain": true, "request_id": true, "ready": true}

// validateFolders reports two pools with one folder in one datacenter:
// every pool needs its own, so that what is in a folder is that pool's
// (DESIGN: Ownership).
func (c *Config) validateFolders(bad badf) {
	seen := map[[2]string]string{}
	for _, p := range c.Pools {
		dc := p.Datacenter
		if dc == "" {
			dc = c.Providers.Vsphere.Datacenter
		}
		key := [2]string{dc, strings.Trim(p.Folder, "/")}
		if key[1] == "" {
			continue // reported by CheckFolder
		} else if other, ok := seen[key]; ok {
			bad("[[pools]] %q: folder %q is also pool %q's: every pool needs a folder of its own", p.Name, p.Folder, other)
		} else {
			seen[key] = p.Name
		}
	}
}

// validatePool checks one pool's settings (where names it in messages).
func (c *Config) validatePool(p pool.PoolConfig, where string, bad badf) {
	g := &c.Global.Config
	if p.Template == "" {
		bad("%s: template is required", where)
	} else if !pool.ValidTemplate(p.Template) {
		bad("%s: template %q must be <folder>/<name>: no leading or trailing '/', no empty, '.' or '..' element", where, p.Template)
	}
	if err := pool.CheckFolder(p); err != nil {
		bad("%s: %v", where, err)
	}
	if p.Provider != "" && p.Provider != "vsphere" {
		bad("%s: provider %q: this vmpooler clones with its one vSphere provider ([providers.vsphere]); leave provider out or set it to \"vsphere\" (a pool of another vCenter needs a pooler of its own)", where, p.Provider)
	}
	if p.Size < 0 {
		bad("%s: size must not be negative (got %d)", where, p.Size)
	}
	if p.MaxRunningPerUser < 0 {
		bad("%s: max_running_per_user must not be negative (got %d)", where, p.MaxRunningPerUser)
	}
	// A pool without its own value inherits the global one, whose
	// problem is reported once under [config].
	if p.Timeout < 0 && p.Timeout != g.Timeout {
		bad("%s: timeout must not be negative (got %d)", where, p.Timeout)
	}
	if p.ReadyTTL < 0 && p.ReadyTTL != g.ReadyTTL {
		bad("%s: ready_ttl must not be negative (got %d)", where, p.ReadyTTL)
	}
}

// redacted returns the configuration with every secret replaced, for GET /config.
func (c *Config) redacted() Config {
	r := *c
	r.Providers = r.Providers.redacted()
	return r
}

// redacted returns the providers with every secret replaced.
func (p Providers) redacted() Providers {
	p.Vsphere = p.Vsphere.Redacted()
	return p
}

// maxPrefixLen leaves room in a 63-byte DNS label for the 15 random
// characters after the prefix.
const maxPrefixLen = 63 - 15

// validPrefix reports whether every hostname made from prefix is a valid,
// reachable DNS label (the API finds VMs by their short hostname, so a dot
// or an underscore made them unreachable).
func validPrefix(p string) bool {
	if len(p) > maxPrefixLen || strings.HasPrefix(p, "-") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// withPrefix wraps err as "<name>: err" unless it already starts so:
// vsphere's and auth's errors name themselves ("vsphere: vsphere: ...").
func withPrefix(name string, err error) error {
	if err == nil || strings.HasPrefix(err.Error(), name+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", name, err)
}

// validateEtcd checks the [etcd] section and what does not go with etcd.
func (c *Config) validateEtcd(bad badf) {
	if !c.onEtcd() {
		if c.Etcd != nil && (c.Etcd.Prefix != "" || c.Etcd.CAFile != "" || c.Etcd.MaxTxnOps != 0) {
			bad("[etcd] has no endpoints and [config] database is not an etcd:// URL: say where etcd is")
		}
		return
	}
	if _, err := c.etcdConfig(); err != nil {
		bad("%v", err)
	}
	if e := c.Etcd; e != nil {
		for _, f := range []struct {
			key string
			v   int
		}{{"dial_timeout", e.DialTimeout}, {"request_timeout", e.RequestTimeout}, {"max_txn_ops", e.MaxTxnOps}, {"lease_ttl", e.LeaseTTL}} {
			if f.v < 0 {
				bad("[etcd] %s must not be negative (got %d)", f.key, f.v)
			}
		}
		if e.CheckoutWindow != nil && *e.CheckoutWindow < 0 {
			bad("[etcd] checkout_window must not be negative (got %d)", *e.CheckoutWindow)
		}
	}
	if c.Global.BackupDir != "" {
		bad("[config] backup_dir: scheduled backups copy the bbolt file; with the state on etcd, back up etcd (etcdctl snapshot save) or copy it out with vmpooler copy-store")
	}
}
