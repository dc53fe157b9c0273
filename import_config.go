package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"

	"github.com/vmpooler/vmpooler/pool"
)

// runImportConfig is "vmpooler import-config vmpooler.yaml": it writes the
// TOML equivalent of upstream vmpooler's YAML to stdout, with a comment on
// every key it drops and why, and a TODO for what needs a decision. The
// TODOs are repeated on stderr so a redirect to a file does not hide them.
func runImportConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("vmpooler import-config", "vmpooler import-config vmpooler.yaml > vmpooler.toml", stderr)
	if err := parseArgs(fs, args, "import-config", "upstream's vmpooler.yaml (see vmpooler import-config -h)"); err != nil {
		return err
	}
	data, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("import-config: %w", err)
	}
	out, todos, err := convertUpstreamYAML(data)
	if err != nil {
		return fmt.Errorf("import-config %s: %w", fs.Arg(0), err)
	}
	if _, err := io.WriteString(stdout, out); err != nil {
		return err
	}
	for _, e := range upstreamEnv {
		if os.Getenv(e) != "" {
			fmt.Fprintf(stderr, "vmpooler import-config: %s is set in this environment: upstream would apply it over the file; this pooler does not read it, so put its value in the TOML yourself\n", e)
		}
	}
	for _, t := range todos {
		fmt.Fprintln(stderr, "vmpooler import-config: TODO:", t)
	}
	return nil
}

// upstreamEnv are the environment variables upstream's lib/vmpooler.rb
// reads (2.x and 3.x). This pooler reads none of them.
var upstreamEnv = []string{
	"VMPOOLER_CONFIG", "VMPOOLER_CONFIG_FILE", "EXTRA_CONFIG", "VMPOOLER_DEBUG", "DOMAIN",
	"TASK_LIMIT", "ONDEMAND_CLONE_LIMIT", "MAX_ONDEMAND_INSTANCES_PER_REQUEST", "MIGRATION_LIMIT",
	"VM_CHECKTIME", "VM_LIFETIME", "VM_LIFETIME_AUTH", "MAX_LIFETIME_UPPER_LIMIT", "READY_TTL",
	"ONDEMAND_REQUEST_TTL", "PREFIX", "LOGFILE", "SITE_NAME", "CLONE_TARGET", "TIMEOUT",
	"TIMEOUT_NOTIFICATION", "MAX_TRIES", "RETRY_FACTOR", "CREATE_FOLDERS", "CREATE_LINKED_CLONES",
	"EXPERIMENTAL_FEATURES", "USAGE_STATS", "REQUEST_LOGGER", "CREATE_TEMPLATE_DELTA_DISKS",
	"PURGE_UNCONFIGURED_RESOURCES", "PURGE_UNCONFIGURED_FOLDERS",
	"REDIS_SERVER", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DATA_TTL", "REDIS_CONNECTION_POOL_SIZE",
	"REDIS_CONNECTION_POOL_TIMEOUT", "REDIS_RECONNECT_ATTEMPTS",
	"STATSD_SERVER", "STATSD_PREFIX", "STATSD_PORT", "GRAPHITE_SERVER", "GRAPHITE_PREFIX", "GRAPHITE_PORT",
	"VMPOOLER_TRACING_ENABLED", "VMPOOLER_TRACING_JAEGER_HOST",
	"AUTH_PROVIDER", "LDAP_HOST", "LDAP_PORT", "LDAP_BASE", "LDAP_USER_OBJECT",
}

// ymap is a YAML mapping whose keys have lost upstream's symbol colon
// (":config:" and "config:" are the same key).
type ymap map[string]any

// normalize turns decoded YAML into ymaps and lists, keys without a
// leading ':'. Symbol values (":simple_tls") keep theirs; see symbol.
func normalize(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(ymap, len(t))
		for k, x := range t {
			m[strings.TrimPrefix(k, ":")] = normalize(x)
		}
		return m
	case map[any]any:
		m := make(ymap, len(t))
		for k, x := range t {
			m[strings.TrimPrefix(fmt.Sprint(k), ":")] = normalize(x)
		}
		return m
	case []any:
		for i := range t {
			t[i] = normalize(t[i])
		}
		return t
	}
	return v
}

// sortedKeys returns m's keys in order, so the output is stable.
func (m ymap) sortedKeys() []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// section returns the mapping under key (nil when absent or not a map).
func (m ymap) section(key string) ymap {
	s, _ := m[key].(ymap)
	return s
}

// converter accumulates the TOML text of one conversion.
type converter struct {
	src   ymap
	out   strings.Builder
	todos []string
	// vsphere is the provider (name under :providers:) the pools use.
	vsphere string
}

func (c *converter) line(format string, args ...any) { fmt.Fprintf(&c.out, format+"\n", args...) }

// drop writes a comment for a key not carried over. Values are never
// written: they may be secrets.
func (c *converter) drop(key, why string) { c.line("# %s: dropped: %s", key, why) }

func (c *converter) todo(key, what string) {
	c.line("# TODO %s: %s", key, what)
	c.todos = append(c.todos, key+": "+what)
}

// set writes key = value, or a TODO when the value has the wrong type.
func (c *converter) set(path, key string, v any, kind string) bool {
	s, err := tomlValue(v, kind)
	if err != nil {
		c.todo(path+key, fmt.Sprintf("%v; set it by hand", err))
		return false
	}
	c.line("%s = %s", key, s)
	return true
}

// convertUpstreamYAML converts upstream's YAML text. It returns the TOML
// and the TODOs left in it (each also a "# TODO" comment in the text).
func convertUpstreamYAML(data []byte) (string, []string, error) {
	var raw map[string]any
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return "", nil, fmt.Errorf("yaml: %w", err)
	}
	src, _ := normalize(raw).(ymap)
	if src == nil {
		return "", nil, errors.New("not a YAML mapping with upstream's sections (:config:, :pools:, :providers:, ...)")
	}
	if _, ok := src["pools"].([]any); !ok {
		return "", nil, errors.New(":pools: is missing or not a list")
	}
	c := &converter{src: src}
	c.header()
	c.config()
	c.pools()
	c.providers()
	c.auth()
	c.tagfilter()
	c.otherSections()
	return c.out.String(), c.todos, nil
}

func (c *converter) header() {
	c.line("# Generated by `vmpooler import-config` from upstream vmpooler's YAML.")
	c.line("# Every key of the YAML is either carried over below or named in a comment")
	c.line("# saying why it was dropped; \"TODO\" marks what needs a decision.")
	c.line("#")
	c.line("# Upstream's environment variables (VMPOOLER_CONFIG, VMPOOLER_CONFIG_FILE,")
	c.line("# EXTRA_CONFIG, REDIS_*, STATSD_*, GRAPHITE_*, DOMAIN, AUTH_PROVIDER, LDAP_*,")
	c.line("# TASK_LIMIT, VM_LIFETIME, ... ) are not needed and not read: this file is the")
	c.line("# whole configuration. Only VMPOOLER_VSPHERE_SERVER/USERNAME/PASSWORD,")
	c.line("# VMPOOLER_LISTEN and VMPOOLER_DATABASE override it (see the README).")
	c.line("# All state lives in one bbolt file ([config] database), not in Redis:")
	c.line("# `vmpooler import-redis` carries tokens and checked-out VMs over.")
	c.line("")
}

// configKeys maps upstream :config: keys to this pooler's [config] keys
// and the value kind. Keys not listed are dropped with upstreamIgnored's
// reason.
var configKeys = map[string]struct{ key, kind string }{
	"site_name":                            {"site_name", "string"},
	"clone_target":                         {"clone_target", "string"},
	"task_limit":                           {"task_limit", "int"},
	"ondemand_clone_limit":                 {"ondemand_clone_limit", "int"},
	"timeout":                              {"timeout", "int"},
	"vm_checktime":                         {"vm_checktime", "int"},
	"vm_lifetime":                          {"vm_lifetime", "int"},
	"vm_lifetime_auth":                     {"vm_lifetime_auth", "int"},
	"allowed_tags":                         {"allowed_tags", "strings"},
	"prefix":                               {"prefix", "string"},
	"domain":                               {"domain", "string"},
	"experimental_features":                {"experimental_features", "bool"},
	"max_lifetime_upper_limit":             {"max_lifetime_upper_limit", "int"},
	"max_ondemand_instances_per_request":   {"max_ondemand_instances_per_request", "int"},
	"ondemand_request_ttl":                 {"ondemand_request_ttl", "int"},
	"ready_ttl":                            {"ready_ttl", "int"},
	"create_folders":                       {"create_folders", "bool"},
	"create_linked_clones":                 {"create_linked_clones", "bool"},
	"check_loop_delay_min":                 {"check_loop_delay", "int"},
	"purge_unconfigured_resources":         {"purge_unconfigured_resources", "bool"},
	"purge_unconfigured_folders":           {"purge_unconfigured_resources", "bool"},
	"check_ready_vm_hostname_for_mismatch": {"check_ready_vm_hostname_for_mismatch", "bool"},
}

func (c *converter) config() {
	g := c.src.section("config")
	c.line("[config]")
	c.line("# Upstream's API listens on every address, port 4567.")
	c.line("listen = \"0.0.0.0:4567\"")
	c.line("database = \"vmpooler.db\"")
	purge := false
	for _, k := range g.sortedKeys() {
		purge = c.configKey(k, g[k]) || purge
	}
	if p := c.src.section("providers").section(c.vsphereName()); p != nil {
		for _, k := range []string{"purge_unconfigured_resources", "purge_unconfigured_folders"} {
			if b, err := toBool(p[k]); p[k] != nil && err == nil && b {
				purge = true
			}
		}
	}
	if purge {
		c.line("# Upstream destroyed every VM in folders no pool names; here only VMs that")
		c.line("# carry this pooler's ownership marker, in folders of pools removed from this file.")
		c.line("purge_unconfigured_resources = true")
	}
	if r := c.src.section("redis"); r != nil && r["data_ttl"] != nil {
		c.line("# from :redis: data_ttl: hours a destroyed VM's record is kept")
		c.set("redis.", "data_ttl", r["data_ttl"], "int")
	}
	c.line("")
}

// configKey converts one :config: key; it reports whether the key asks
// for purge_unconfigured_resources.
func (c *converter) configKey(k string, v any) (purge bool) {
	m, ok := configKeys[k]
	switch {
	case k == "purge_unconfigured_folders" || k == "purge_unconfigured_resources":
		if b, err := toBool(v); err == nil && b {
			purge = true
		} else if err != nil {
			c.todo("config."+k, err.Error())
		}
		if k == "purge_unconfigured_folders" {
			c.line("# %s: upstream's deprecated name of purge_unconfigured_resources", k)
		}
	case ok && k == "prefix":
		if s, _ := v.(string); !validPrefix(s) {
			c.todo("config.prefix", fmt.Sprintf("%q is not a valid prefix here: at most %d of a-z 0-9 '-', not starting with '-' (it begins every hostname)", s, maxPrefixLen))
		} else {
			c.set("config.", m.key, v, m.kind)
		}
	case ok:
		c.set("config.", m.key, v, m.kind)
	case k == "check_loop_delay_max" || k == "check_loop_delay_decay":
		c.drop(k, "one fixed check_loop_delay (from check_loop_delay_min); a checkout or a return wakes the manager at once")
	default:
		c.dropUpstream("config", k)
	}
	return purge
}

// dropUpstream comments out a key of section sect with the reason
// config_upstream.go gives, or as unknown.
func (c *converter) dropUpstream(sect, k string) {
	if why := ignoredUpstreamKey(sect + "." + k); why != "" {
		c.drop(k, why)
		return
	}
	if why, ok := extraDropped[sect+"."+k]; ok {
		c.drop(k, why)
		return
	}
	c.drop(k, "not a key this importer knows (check upstream's documentation for it)")
}

// extraDropped are upstream keys dropped by the importer that are not in
// upstreamIgnored (they are not accepted in the TOML file either).
var extraDropped = map[string]string{
	"config.timeout_notification": "the timeout itself is logged",
	"config.max_vm_retries":       "ondemand clones are retried until the request's TTL",
	"config.check_loop_delay_max": "check_loop_delay",
	"pools.provider":              "one vSphere provider per pooler",
	"pools.check_loop_delay_min":  "one global check_loop_delay",
}

// vsphereName is the :providers: entry this pooler's one vSphere provider
// is made of: the one most pools name (default "vsphere"), if it exists.
func (c *converter) vsphereName() string {
	if c.vsphere != "" {
		return c.vsphere
	}
	count := map[string]int{}
	for _, p := range c.src["pools"].([]any) {
		pm, _ := p.(ymap)
		name, _ := pm["provider"].(string)
		if name == "" {
			name = "vsphere"
		}
		count[name]++
	}
	best := "vsphere"
	for name, n := range count {
		if n > count[best] || (n == count[best] && best != "vsphere" && name < best) {
			best = name
		}
	}
	c.vsphere = best
	return best
}

// poolKeys maps upstream pool keys to [[pools]] keys and kinds.
var poolKeys = map[string]struct{ key, kind string }{
	"name":                          {"name", "string"},
	"alias":                         {"alias", "aliases"},
	"template":                      {"template", "string"},
	"folder":                        {"folder", "string"},
	"datastore":                     {"datastore", "string"},
	"datacenter":                    {"datacenter", "string"},
	"clone_target":                  {"clone_target", "string"},
	"size":                          {"size", "int"},
	"timeout":                       {"timeout", "int"},
	"ready_ttl":                     {"ready_ttl", "int"},
	"create_linked_clone":           {"create_linked_clone", "bool"},
	"network":                       {"network", "string"},
	"snapshot_mainMem_ioBlockPages": {"snapshot_mainMem_ioBlockPages", "intstring"},
	"snapshot_mainMem_iowait":       {"snapshot_mainMem_iowait", "intstring"},
	"domain":                        {"domain", "string"},
	"check_hostname_for_mismatch":   {"check_hostname_for_mismatch", "bool"},
}

func (c *converter) pools() {
	dns := c.src.section("dns_configs")
	c.line("# The pooler destroys only VMs it created (each clone carries an ownership")
	c.line("# marker) or knows from its database (see \"Ownership\" in the README).")
	c.line("")
	provider := c.vsphereName()
	folders := map[string]string{} // folder → the first pool in it
	for i, p := range c.src["pools"].([]any) {
		pm, _ := p.(ymap)
		name, _ := pm["name"].(string)
		where := fmt.Sprintf("pools[%d]", i)
		if name != "" {
			where = "pools." + name
		}
		prefix := ""
		pv, _ := pm["provider"].(string)
		if pv == "" {
			pv = "vsphere" // upstream's default
		}
		if pv != provider {
			c.todo(where, fmt.Sprintf("uses provider %q, not %q: this pooler talks to one vCenter; run a second pooler (with its own database) for this provider's pools. Left commented out", pv, provider))
			prefix = "# "
		}
		c.line("%s[[pools]]", prefix)
		if pm == nil {
			c.todo(where, "not a mapping")
			continue
		}
		if pm["folder"] == nil {
			c.todo(where+".folder", "upstream's pool has no folder; this pooler requires one per pool (below the datacenter's VM folder, holding only this pool's VMs); set it, or the file is refused at start")
		} else if f, _ := pm["folder"].(string); prefix == "" && f != "" {
			dc, _ := pm["datacenter"].(string)
			key := dc + "\x00" + strings.Trim(f, "/")
			if other, ok := folders[key]; ok {
				c.todo(where+".folder", fmt.Sprintf("%q is also pool %s's folder; this pooler requires a folder of its own per pool: give each pool its own (its VMs then fill it anew), or the file is refused at start", f, other))
			} else {
				folders[key] = name
			}
		}
		if _, ok := pm["name"]; ok {
			c.poolKey(where, prefix, "name", pm["name"], dns)
		}
		for _, k := range pm.sortedKeys() {
			if k != "name" {
				c.poolKey(where, prefix, k, pm[k], dns)
			}
		}
		c.line("")
	}
}

func (c *converter) poolKey(where, prefix, k string, v any, dns ymap) {
	m, ok := poolKeys[k]
	switch {
	case ok && k == "template":
		if s, _ := v.(string); !pool.ValidTemplate(s) {
			c.todo(where+".template", fmt.Sprintf("%q must be <folder>/<name> below the datacenter's VM folder", s))
			return
		}
	case ok:
	case k == "provider":
		c.line("# provider: this pooler's one vSphere provider ([providers.vsphere])")
		return
	case k == "dns_plugin":
		name, _ := v.(string)
		d := dns.section(name)
		dom, _ := d["domain"].(string)
		if dom == "" {
			c.todo(where+".dns_plugin", fmt.Sprintf("names %q, which has no domain under :dns_configs:; set domain", name))
			return
		}
		c.line("# dns_plugin %q: its domain (DNS records are not managed here: dynamic DNS must register the VMs)", name)
		c.line("%sdomain = %s", prefix, quote(dom))
		return
	case k == "check_loop_delay_min" || k == "check_loop_delay_max" || k == "check_loop_delay_decay" || k == "timeout_notification":
		c.dropUpstream("pools", k)
		return
	default:
		c.dropUpstream("pools", k)
		return
	}
	s, err := tomlValue(v, m.kind)
	if err != nil {
		c.todo(where+"."+k, fmt.Sprintf("%v; set it by hand", err))
		return
	}
	c.line("%s%s = %s", prefix, m.key, s)
}

// vsphereKeys maps upstream's vSphere provider keys.
var vsphereKeys = map[string]struct{ key, kind string }{
	"server":     {"server", "string"},
	"username":   {"username", "string"},
	"password":   {"password", "string"},
	"insecure":   {"insecure", "bool"},
	"datacenter": {"datacenter", "string"},
}

func (c *converter) providers() {
	provs := c.src.section("providers")
	name := c.vsphereName()
	v := provs.section(name)
	legacy := false
	if v == nil && name == "vsphere" {
		v, legacy = c.src.section("vsphere"), true
	}
	c.line("[providers.vsphere]")
	if v == nil {
		c.todo("providers.vsphere", "no vSphere provider section found; set server, username and password")
	} else if legacy {
		c.line("# from upstream's legacy top-level :vsphere: section")
	} else if name != "vsphere" {
		c.line("# from :providers: %s", name)
	}
	for _, k := range v.sortedKeys() {
		if m, ok := vsphereKeys[k]; ok {
			if k == "password" {
				c.line("# Better: leave the password out and set VMPOOLER_VSPHERE_PASSWORD.")
			}
			c.set("providers.vsphere.", m.key, v[k], m.kind)
			continue
		}
		switch k {
		case "purge_unconfigured_resources", "purge_unconfigured_folders":
			c.line("# %s: moved to [config] purge_unconfigured_resources", k)
		case "provider_class":
			c.line("# provider_class: the provider is vsphere")
		case "connection_pool_size", "connection_pool_timeout":
			c.drop(k, "not needed: one vCenter session, no connection pool")
		default:
			c.dropUpstream("providers.vsphere", k)
		}
	}
	c.line("")
	for _, other := range provs.sortedKeys() {
		if other == name {
			continue
		}
		if other == "dummy" {
			c.line("# :providers: dummy: dropped: upstream's test provider; [providers.fake] is this pooler's")
			continue
		}
		c.line("# :providers: %s: dropped: this pooler talks to one vCenter (the one its pools use); run another pooler, with its own database, for another", other)
	}
	if len(provs) > 1 {
		c.line("")
	}
	if !legacy && c.src["vsphere"] != nil {
		c.line("# :vsphere: (legacy section): dropped: :providers: has the vSphere provider")
	}
}

// ldapSupported reports whether this build's [auth] takes an [auth.ldap]
// table (it arrives with the LDAP provider).
func ldapSupported() bool {
	var cfg Config
	md, err := toml.Decode("[auth]\nprovider = \"ldap\"\n[auth.ldap]\nhost = \"h\"\n", &cfg)
	return err == nil && len(md.Undecoded()) == 0
}

func (c *converter) auth() {
	a := c.src.section("auth")
	if a == nil {
		c.line("# No :auth: section: authentication stays off (token routes answer 404).")
		c.line("")
		return
	}
	provider, _ := a["provider"].(string)
	switch provider {
	case "dummy":
		c.line("[auth]")
		c.line("# dummy accepts any user whose password differs from the name: tests only")
		c.line("provider = \"dummy\"")
	case "ldap":
		c.ldap(a.section("ldap"))
	default:
		c.line("[auth]")
		c.todo("auth.provider", fmt.Sprintf("upstream provider %q is not known here; use htpasswd (file = ...)", provider))
		c.line("provider = \"htpasswd\"")
		c.line("file = \"htpasswd\"")
	}
	for _, k := range a.sortedKeys() {
		if k != "provider" && k != "ldap" {
			c.dropUpstream("auth", k)
		}
	}
	c.line("")
}

// ldap writes upstream's LDAP settings under issue 15's names. A build
// without the LDAP provider gets them commented out, and an htpasswd
// provider whose missing file stops the pooler at start until decided.
func (c *converter) ldap(l ymap) {
	live := ldapSupported()
	p := "# "
	if live {
		p = ""
	}
	c.line("[auth]")
	if live {
		c.line("provider = \"ldap\"")
	} else {
		c.todo("auth.provider", "upstream uses LDAP, which this build does not have yet: the LDAP settings are below, commented out; meanwhile users log in from an htpasswd file (create it with `htpasswd -B -c htpasswd USER`); existing tokens keep working either way")
		c.line("provider = \"htpasswd\"")
		c.line("file = \"htpasswd\"")
	}
	c.line("%s[auth.ldap]", p)
	for _, k := range l.sortedKeys() {
		v := l[k]
		switch k {
		case "host":
			c.optLine(p, "host", v, "string")
		case "port":
			c.optLine(p, "port", v, "int")
		case "base", "user_object":
			c.optLine(p, k, v, "aliases")
		case "encryption":
			e, _ := v.(ymap)
			method, _ := e["method"].(string)
			method = strings.TrimPrefix(method, ":")
			if method == "" {
				c.line("# encryption: none given; upstream then talks plain LDAP")
				c.line("%sinsecure = true", p)
			} else {
				c.line("%sencryption = %s", p, quote(method))
			}
			if e["tls_options"] != nil {
				c.drop("encryption.tls_options", "TLS 1.2 or later is always used; give ca_file for a private CA")
			}
		case "service_account_hash":
			// a sub-table: written last, after the keys of [auth.ldap]
		default:
			c.dropUpstream("auth.ldap", k)
		}
	}
	sa, ok := l["service_account_hash"].(ymap)
	if !ok {
		return
	}
	c.line("%s[auth.ldap.service_account]", p)
	if dn, ok := sa["user_dn"]; ok {
		c.optLine(p, "user_dn", dn, "string")
	}
	if pw, ok := sa["password"]; ok && live {
		c.optLine(p, "password", pw, "string")
	} else if ok {
		c.line("# password: the service account's password (not copied into a comment)")
	}
	for _, k := range sa.sortedKeys() {
		if k != "user_dn" && k != "password" {
			c.dropUpstream("auth.ldap.service_account_hash", k)
		}
	}
}

func (c *converter) optLine(prefix, key string, v any, kind string) {
	s, err := tomlValue(v, kind)
	if err != nil {
		c.todo("auth.ldap."+key, err.Error())
		return
	}
	c.line("%s%s = %s", prefix, key, s)
}

func (c *converter) tagfilter() {
	t := c.src.section("tagfilter")
	if t == nil {
		return
	}
	c.line("[tagfilter]")
	for _, k := range t.sortedKeys() {
		s, ok := t[k].(string)
		if !ok {
			c.todo("tagfilter."+k, "not a string")
			continue
		}
		if _, err := regexp.Compile(s); err != nil {
			c.todo("tagfilter."+k, fmt.Sprintf("Ruby regular expression not accepted by Go's RE2 (%v); rewrite it", err))
			continue
		}
		c.line("%s = %s", tomlKey(k), quote(s))
	}
	c.line("")
}

// otherSections comments on the top-level sections not carried over.
func (c *converter) otherSections() {
	why := map[string]string{
		"redis":       "all state is in the bbolt file ([config] database); data_ttl was carried over; `vmpooler import-redis` copies tokens and checked-out VMs",
		"statsd":      "metrics are served at GET /metrics (Prometheus); no statsd",
		"graphite":    "metrics are served at GET /metrics (Prometheus); no graphite",
		"graphs":      "no dashboard; see /summary and /metrics",
		"prometheus":  "metrics are always at GET /metrics (no prefix or endpoint setting)",
		"dns_configs": "pools' domains were taken from it; DNS records are not managed (dynamic DNS only)",
		"dummy":       "upstream's test provider; [providers.fake] is this pooler's",
		"tracing":     "no tracing",
		"vsphere":     "",
	}
	done := []string{"config", "pools", "providers", "auth", "tagfilter"}
	var lines []string
	for _, k := range c.src.sortedKeys() {
		if slices.Contains(done, k) {
			continue
		}
		w, ok := why[k]
		if w == "" && ok {
			continue // said in providers()
		}
		if !ok {
			w = "not a section this importer knows"
		}
		lines = append(lines, fmt.Sprintf("# :%s: section: dropped: %s", k, w))
	}
	if len(lines) > 0 {
		for _, l := range lines {
			c.line("%s", l)
		}
	}
}

// tomlValue renders v as a TOML value of kind: string, int (also from a
// numeric string, as upstream's string_to_int), bool (also "true"/"false"),
// strings (a list), aliases (a string or a list), intstring (int or
// numeric string, kept as given).
func tomlValue(v any, kind string) (string, error) {
	switch kind {
	case "string":
		switch t := v.(type) {
		case string:
			return quote(t), nil
		case int, float64, bool:
			return quote(fmt.Sprint(t)), nil
		}
	case "int":
		switch t := v.(type) {
		case int:
			return strconv.Itoa(t), nil
		case string:
			if n, err := strconv.Atoi(strings.TrimSpace(t)); err == nil {
				return strconv.Itoa(n), nil
			}
		}
		return "", fmt.Errorf("want a whole number, got %T", v)
	case "bool":
		b, err := toBool(v)
		if err != nil {
			return "", err
		}
		return strconv.FormatBool(b), nil
	case "intstring":
		switch t := v.(type) {
		case int:
			return strconv.Itoa(t), nil
		case string:
			if _, err := strconv.Atoi(t); err == nil {
				return quote(t), nil
			}
		}
		return "", fmt.Errorf("want a whole number, got %T", v)
	case "aliases", "strings":
		switch t := v.(type) {
		case string:
			if kind == "aliases" {
				return quote(t), nil
			}
			return "[" + quote(t) + "]", nil
		case []any:
			parts := make([]string, 0, len(t))
			for _, x := range t {
				s, ok := x.(string)
				if !ok {
					return "", fmt.Errorf("want a list of strings, got a %T in it", x)
				}
				parts = append(parts, quote(s))
			}
			return "[" + strings.Join(parts, ", ") + "]", nil
		}
	}
	return "", fmt.Errorf("want a %s, got %T", kind, v)
}

// toBool reads a YAML boolean, or "true"/"false" as upstream's true?.
func toBool(v any) (bool, error) {
	switch t := v.(type) {
	case bool:
		return t, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "true":
			return true, nil
		case "false", "":
			return false, nil
		}
	case nil:
		return false, nil
	}
	return false, fmt.Errorf("want true or false, got %T", v)
}

// quote renders s as a TOML string: a literal string when it can be one
// (no escapes to get wrong in regular expressions), else a basic string.
func quote(s string) string {
	literal := !strings.ContainsAny(s, "'\n\r")
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0x7f {
			literal = false
		}
	}
	if literal {
		return "'" + s + "'"
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlKey renders a key: bare when it can be, else quoted.
func tomlKey(k string) string {
	if !pool.ValidChars(k, "_-") {
		return quote(k)
	}
	if k == "" {
		return `""`
	}
	return k
}
