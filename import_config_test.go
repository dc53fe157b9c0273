package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"gopkg.in/yaml.v3"
)

var upstreamFixtures = []string{
	"testdata/upstream/vmpooler-2.5.0.yaml",
	"testdata/upstream/vmpooler-2.5.0-strings.yaml",
	"testdata/upstream/vmpooler-3.9.1.yaml",
	"testdata/upstream/vmpooler-3.9.1-strings.yaml",
}

func mustConvert(t *testing.T, path string) (string, []string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out, todos, err := convertUpstreamYAML(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return out, todos
}

// The generated TOML loads, without a warning, with upstream's values.
func TestImportConfigRoundTrip(t *testing.T) {
	for _, f := range upstreamFixtures {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, _ := mustConvert(t, f)
			cfg, err := ParseConfig("/etc/vmpooler/vmpooler.toml", out, func(string) string { return "" })
			if err != nil {
				t.Fatalf("generated TOML does not load: %v\n%s", err, out)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("warnings: %q", cfg.Warnings)
			}
			g := cfg.Global
			for _, c := range []struct {
				name      string
				got, want any
			}{
				{"vm_lifetime", g.VMLifetime, 12},
				{"vm_lifetime_auth", g.VMLifetimeAuth, 24},
				{"prefix", g.Prefix, "poolvm-"},
				{"listen", g.Listen, "0.0.0.0:4567"},
				{"check_loop_delay", g.CheckLoopDelay, 5},
				{"clone_target", g.CloneTarget, "cluster1"},
				{"purge", g.PurgeUnconfiguredResources, true},
				{"data_ttl", g.DataTTL, 168},
				{"allowed_tags", strings.Join(g.AllowedTags, ","), "created_by,project"},
				{"experimental", g.ExperimentalFeatures, true},
				{"server", cfg.Providers.Vsphere.Server, "vcenter.example.com"},
				{"password", cfg.Providers.Vsphere.Password, "FAKE-vsphere-secret"},
				{"create_folders", cfg.Providers.Vsphere.CreateFolders, true},
				{"pools", len(cfg.Pools), 2},
				{"pool name", cfg.Pools[1].Name, "debian-7-x86_64"},
				{"pool folder", cfg.Pools[1].Folder, "Pooled VMs/debian-7-x86_64"},
				{"pool alias", strings.Join(cfg.Pools[1].Alias, ","), "debian-7-64,debian-7-amd64"},
				{"pool ready_ttl", cfg.Pools[0].ReadyTTL, 1440},
				{"pool clone_target", cfg.Pools[0].CloneTarget, "cluster2"},
				{"pool linked", *cfg.Pools[1].LinkedClone, false},
				{"pool iowait", cfg.Pools[1].SnapshotMainMemIOWait != nil, true},
				{"tagfilter", cfg.TagFilter["url"], `(.*)\/`},
				{"auth", cfg.Auth != nil, true},
			} {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
			// 2.x has :config: domain, 3.x the pools' dns_plugin.
			dom := g.Domain
			if dom == "" {
				dom = cfg.Pools[0].Domain
			}
			if dom != "example.com" {
				t.Errorf("domain: global %q, pool %q; want example.com", g.Domain, cfg.Pools[0].Domain)
			}
		})
	}
}

// Both of upstream's key styles give the same TOML.
func TestImportConfigKeyStyles(t *testing.T) {
	for _, v := range []string{"2.5.0", "3.9.1"} {
		sym, _ := mustConvert(t, "testdata/upstream/vmpooler-"+v+".yaml")
		str, _ := mustConvert(t, "testdata/upstream/vmpooler-"+v+"-strings.yaml")
		if sym != str {
			t.Errorf("%s: symbol style and string style differ", v)
		}
		if bytes.Contains(mustRead(t, "testdata/upstream/vmpooler-"+v+"-strings.yaml"), []byte("\n:config:")) {
			t.Errorf("%s: the string-style fixture has symbol keys", v)
		}
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Every key of the YAML is either carried over or named in a comment, and
// no secret is in a comment.
func TestImportConfigEveryKeySaid(t *testing.T) {
	for _, f := range upstreamFixtures {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, _ := mustConvert(t, f)
			var raw map[string]any
			if err := yaml.Unmarshal(mustRead(t, f), &raw); err != nil {
				t.Fatal(err)
			}
			src := normalize(raw).(ymap)
			said := func(where, k string) {
				if !strings.Contains(out, k) {
					t.Errorf("%s: key %q is neither carried over nor commented on", where, k)
				}
			}
			for sect, v := range src {
				switch sect {
				case "config", "auth", "tagfilter":
					for k := range v.(ymap) {
						said(sect, k)
					}
				case "pools":
					for _, p := range v.([]any) {
						for k := range p.(ymap) {
							said("pools", k)
						}
					}
				case "providers":
					for name, p := range v.(ymap) {
						said("providers", name)
						if name == "vsphere" {
							for k := range p.(ymap) {
								said("providers.vsphere", k)
							}
						}
					}
				default:
					said("top level", ":"+sect+":")
				}
			}
			for _, l := range strings.Split(out, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), "#") && strings.Contains(l, "FAKE-") {
					t.Errorf("a secret in a comment: %s", l)
				}
			}
			if strings.Contains(out, "FAKE-redis") || strings.Contains(out, "FAKE-pdx") || strings.Contains(out, "FAKE-bfs") {
				t.Error("a secret of a dropped section was copied")
			}
		})
	}
}

// The fixtures hold every key of upstream's vmpooler.yaml.example (2.5.0,
// 3.9.1), so that the tests above cover them all.
func TestImportConfigFixturesCoverUpstream(t *testing.T) {
	common := map[string][]string{
		"config": {"site_name", "logfile", "clone_target", "task_limit", "ondemand_clone_limit", "timeout",
			"vm_checktime", "vm_lifetime", "vm_lifetime_auth", "allowed_tags", "prefix", "migration_limit",
			"max_tries", "retry_factor", "check_loop_delay_min", "check_loop_delay_max", "check_loop_delay_decay",
			"manage_host_selection", "create_folders", "create_template_delta_disks", "host_selection_max_age",
			"utilization_limit", "experimental_features", "purge_unconfigured_folders", "purge_unconfigured_resources",
			"backend_weight", "usage_stats", "request_logger", "max_lifetime_upper_limit", "extra_config",
			"max_ondemand_instances_per_request", "ondemand_request_ttl", "ready_ttl"},
		"pools": {"name", "alias", "template", "size", "provider", "clone_target", "timeout", "ready_ttl",
			"check_loop_delay_min", "check_loop_delay_max", "check_loop_delay_decay", "folder", "datastore",
			"datacenter", "snapshot_mainMem_ioBlockPages", "snapshot_mainMem_iowait", "create_linked_clone"},
		"providers.vsphere": {"server", "username", "password", "insecure", "datacenter", "provider_class",
			"purge_unconfigured_folders", "purge_unconfigured_resources", "folder_whitelist", "resources_allowlist",
			"skip_dns_check_before_creating_vm", "connection_pool_size", "connection_pool_timeout"},
		"providers.dummy": {"filename", "connection_pool_size", "connection_pool_timeout", "migratevm_couldmove_percent",
			"migratevm_max_time", "migratevm_fail_percent", "getvm_poweroff_percent", "getvm_rename_percent",
			"createvm_max_time", "createvm_fail_percent", "createdisk_max_time", "createdisk_fail_percent",
			"createsnapshot_max_time", "createsnapshot_fail_percent", "revertsnapshot_max_time",
			"revertsnapshot_fail_percent", "destroyvm_max_shutdown_time", "destroyvm_max_time",
			"destroyvm_fail_percent", "vmready_fail_percent"},
		"redis":       {"server", "username", "password", "data_ttl", "redis_connection_pool_size", "redis_connection_pool_timeout", "reconnect_attempts"},
		"statsd":      {"server", "prefix", "port"},
		"graphite":    {"server", "prefix", "port"},
		"graphs":      {"server", "prefix"},
		"prometheus":  {"prefix", "prometheus_prefix", "prometheus_endpoint"},
		"auth":        {"provider", "ldap"},
		"auth.ldap":   {"host", "port", "base", "user_object", "encryption"},
		"tagfilter":   {"url"},
		"dns_configs": nil,
	}
	only := map[string]map[string][]string{
		"2.5.0": {"config": {"domain"}},
		"3.9.1": {
			"config": {"timeout_notification", "max_vm_retries", "circuit_breaker_enabled", "circuit_breaker_failure_threshold",
				"circuit_breaker_timeout", "circuit_breaker_half_open_attempts", "adaptive_timeout_enabled",
				"connection_pool_timeout_min", "connection_pool_timeout_max", "connection_pool_timeout_initial",
				"connection_pool_monitor_enabled", "connection_pool_monitor_interval"},
			"pools":       {"dns_plugin", "timeout_notification"},
			"auth.ldap":   {"service_account_hash"},
			"dns_configs": {"example"},
		},
	}
	for v, extra := range only {
		for _, f := range []string{"testdata/upstream/vmpooler-" + v + ".yaml", "testdata/upstream/vmpooler-" + v + "-strings.yaml"} {
			var raw map[string]any
			if err := yaml.Unmarshal(mustRead(t, f), &raw); err != nil {
				t.Fatal(err)
			}
			src := normalize(raw).(ymap)
			for sect, keys := range common {
				if sect == "dns_configs" && v == "2.5.0" {
					continue
				}
				for _, k := range slices.Concat(keys, extra[sect]) {
					if !fixtureHas(src, sect, k) {
						t.Errorf("%s: %s has no %s", f, sect, k)
					}
				}
			}
		}
	}
}

func fixtureHas(src ymap, sect, key string) bool {
	if sect == "pools" {
		for _, p := range src["pools"].([]any) {
			if _, ok := p.(ymap)[key]; ok {
				return true
			}
		}
		return false
	}
	m := src
	for _, s := range strings.Split(sect, ".") {
		m = m.section(s)
	}
	_, ok := m[key]
	return ok
}

// A pool without a folder is a TODO, and the file is refused until one is set.
func TestImportConfigPoolWithoutFolder(t *testing.T) {
	y := ":config:\n  vm_lifetime: 2\n:providers:\n  :vsphere:\n    server: v\n:pools:\n  - name: p\n    template: t/p\n    size: 1\n"
	out, todos, err := convertUpstreamYAML([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if len(todos) != 1 || !strings.Contains(todos[0], "pools.p.folder") {
		t.Errorf("todos = %q, want one about pools.p.folder", todos)
	}
	if !strings.Contains(out, "# TODO pools.p.folder") {
		t.Errorf("no TODO comment in:\n%s", out)
	}
	_, err = ParseConfig("x.toml", out, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "folder is required") {
		t.Errorf("loading: err = %v, want folder is required", err)
	}
}

// Two upstream pools in one folder: a TODO, and the converted file is
// refused until each has its own.
func TestImportConfigSharedFolder(t *testing.T) {
	y := ":providers:\n  :vsphere:\n    server: v\n:pools:\n  - name: p\n    template: t/p\n    folder: pooled\n  - name: q\n    template: t/q\n    folder: /pooled/\n"
	out, todos, err := convertUpstreamYAML([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	if len(todos) != 1 || !strings.Contains(todos[0], "pools.q.folder") || !strings.Contains(todos[0], "also pool p's") {
		t.Errorf("todos = %q, want one about pools.q.folder", todos)
	}
	_, err = ParseConfig("x.toml", out, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), `is also pool "p"'s`) {
		t.Errorf("loading: err = %v, want the shared folder refused", err)
	}
}

func TestImportConfigBadInput(t *testing.T) {
	for name, y := range map[string]string{
		"not yaml":   ":config: [\n",
		"no pools":   ":config:\n  vm_lifetime: 1\n",
		"pools map":  ":pools:\n  a: 1\n",
		"not a map":  "- 1\n- 2\n",
		"empty file": "",
	} {
		if _, _, err := convertUpstreamYAML([]byte(y)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(t.Context(), []string{"import-config"}, &stdout, &stderr); err == nil {
		t.Error("import-config without a file: no error")
	}
	if err := run(t.Context(), []string{"import-config", filepath.Join(t.TempDir(), "none.yaml")}, &stdout, &stderr); err == nil {
		t.Error("import-config of a missing file: no error")
	}
}

// Values of the wrong type, a Ruby-only regexp, a bad prefix, a pool on
// another provider and the dummy auth provider.
func TestImportConfigOddValues(t *testing.T) {
	y := `:config:
  vm_lifetime: 'twelve'
  timeout: '20'
  prefix: 'Pool_VM.'
:auth:
  provider: dummy
:tagfilter:
  url: '(?=x)(.*)\/'
:providers:
  :vsphere:
    server: v
  :other:
    server: w
    provider_class: vsphere
:pools:
  - name: a
    template: t/a
    folder: f/a
  - name: b
    template: t/b
    folder: f/b
    provider: other
`
	out, todos, err := convertUpstreamYAML([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"config.vm_lifetime", "config.prefix", "tagfilter.url", "pools.b"} {
		if !slices.ContainsFunc(todos, func(s string) bool { return strings.HasPrefix(s, want) }) {
			t.Errorf("no TODO for %s in %q", want, todos)
		}
	}
	cfg, err := ParseConfig("x.toml", out, func(string) string { return "" })
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if cfg.Global.Timeout != 20 || len(cfg.Pools) != 1 || cfg.Auth.Provider != "dummy" {
		t.Errorf("timeout %d, pools %d, auth %q; want 20, 1 (b commented out), dummy", cfg.Global.Timeout, len(cfg.Pools), cfg.Auth.Provider)
	}
}

func TestImportConfigQuote(t *testing.T) {
	for _, s := range []string{`(.*)\/`, `it's`, "a\nb", `"q"\`, "tab\there", "\x01"} {
		var v struct{ K string }
		if _, err := tomlDecode("K = "+quote(s), &v); err != nil || v.K != s {
			t.Errorf("quote(%q) = %s: decoded %q, %v", s, quote(s), v.K, err)
		}
	}
}

func tomlDecode(s string, v any) (any, error) { return toml.Decode(s, v) }
