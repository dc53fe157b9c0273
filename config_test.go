package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

// The shipped example must parse, so it cannot drift from the code.
func TestExampleConfigParses(t *testing.T) {
	data, err := os.ReadFile("vmpooler.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig("vmpooler.toml.example", string(data), noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.Global.Listen, "127.0.0.1:4567"; got != want {
		t.Errorf("listen = %q, want %q", got, want)
	}
	if !c.Providers.Vsphere.Simulator {
		t.Error("the example must run on the embedded simulator")
	}
	if len(c.Pools) < 2 {
		t.Fatalf("pools = %d, want at least 2", len(c.Pools))
	}
	if got := c.Pools[1].Alias; len(got) != 1 || got[0] != "centos-7" {
		t.Errorf("string alias = %q, want [centos-7]", got)
	}
	if got := c.Pools[1].ReadyTTL; got != 120 {
		t.Errorf("pool ready_ttl = %d, want 120", got)
	}
	if got := c.Pools[0].ReadyTTL; got != 60 {
		t.Errorf("pool ready_ttl default = %d, want 60 from [config]", got)
	}
	if c.Global.JobTimeout != 30 || c.Pools[0].SnapshotMemory == nil || !c.Pools[0].SnapshotWithMemory() {
		t.Errorf("job_timeout = %d, snapshot_memory = %v; want both documented (30, true)",
			c.Global.JobTimeout, c.Pools[0].SnapshotMemory)
	}
}

const minimal = `
[[pools]]
name = "a"
template = "t/a"
folder = "pools/a"
size = 1
`

// minimalConfig writes minimal, with a database in the same fresh
// directory, and returns the database's and the file's paths.
func minimalConfig(t *testing.T) (db, cfgPath string) {
	t.Helper()
	dir := t.TempDir()
	db, cfgPath = filepath.Join(dir, "vmpooler.db"), filepath.Join(dir, "vmpooler.toml")
	writeConfig(t, cfgPath, "[config]\ndatabase = \""+db+"\"\n"+minimal)
	return db, cfgPath
}

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig("x", minimal, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	g := c.Global
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"listen", g.Listen, "127.0.0.1:4567"},
		{"database", g.Database, "vmpooler.db"},
		{"vm_lifetime", g.VMLifetime, 24},
		{"ready_ttl", g.ReadyTTL, 60},
		{"timeout", g.Timeout, 15},
		{"vm_checktime", g.VMCheckTime, 1},
		{"task_limit", g.TaskLimit, 10},
		{"job_timeout", g.JobTimeout, 30},
		{"pool timeout", c.Pools[0].Timeout, 15},
		{"pool snapshot_memory", c.Pools[0].SnapshotWithMemory(), true},
		{"pool provider", c.Pools[0].Provider, "vsphere"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // every substring must appear in the error
	}{
		{"unknown keys", "[config]\nlisten2 = \"x\"\nfoo = 1\n" + minimal, []string{"config.listen2", "config.foo"}},
		{"unknown pool key", "[[pools]]\nname = \"a\"\ntemplate = \"t\"\nsise = 3\n", []string{"pools.sise"}},
		{"negative size", "[[pools]]\nname = \"a\"\ntemplate = \"t\"\nsize = -1\n", []string{`"a"`, "size"}},
		{"negative lifetime", "[config]\nvm_lifetime = -2\n" + minimal, []string{"vm_lifetime"}},
		{"negative job_timeout", "[config]\njob_timeout = -1\n" + minimal, []string{"job_timeout"}},
		{"duplicate pool", minimal + minimal, []string{"duplicate pool name"}},
		{"alias is a pool", minimal + "[[pools]]\nname = \"b\"\ntemplate = \"t/b\"\nalias = [\"a\"]\n", []string{`alias "a"`}},
		{"no folder", "[[pools]]\nname = \"a\"\ntemplate = \"t/a\"\n", []string{`"a"`, "folder is required"}},
		{"root folder", "[[pools]]\nname = \"a\"\ntemplate = \"t/a\"\nfolder = \"/\"\n", []string{`"a"`, "folder is required", "root VM folder"}},
		{"folder holds template", "[[pools]]\nname = \"a\"\ntemplate = \"pools/a/tpl\"\nfolder = \"pools/a/\"\n", []string{`"a"`, `folder "pools/a/" holds the pool's template`}},
		{"folder not clean", "[[pools]]\nname = \"a\"\ntemplate = \"t/a\"\nfolder = \"x/../y\"\n", []string{`"a"`, "not a clean inventory path"}},
		{"folder with a dot", "[[pools]]\nname = \"a\"\ntemplate = \"t/a\"\nfolder = \"./pools/a\"\n", []string{`"a"`, "not a clean inventory path"}},
		{"two pools, one folder", "[[pools]]\nname = \"a\"\ntemplate = \"t/a\"\nfolder = \"pools/x\"\n[[pools]]\nname = \"b\"\ntemplate = \"t/b\"\nfolder = \"/pools/x/\"\n", []string{`"b"`, `is also pool "a"'s`}},
		{"pool named ok", "[[pools]]\nname = \"ok\"\ntemplate = \"t/a\"\nfolder = \"pools/ok\"\n", []string{`"ok"`, "key of the API's answers"}},
		{"alias domain", "[[pools]]\nname = \"a\"\nalias = \"domain\"\ntemplate = \"t/a\"\nfolder = \"pools/a\"\n", []string{`alias "domain"`, "key of the API's answers"}},
		{"other provider", "[[pools]]\nname = \"a\"\ntemplate = \"t/a\"\nfolder = \"pools/a\"\nprovider = \"vsphere-lab2\"\n", []string{`"a"`, `provider "vsphere-lab2"`}},
		{"no template", "[[pools]]\nname = \"a\"\n", []string{"template is required"}},
		{"no pools", "[config]\nlisten = \"127.0.0.1:1\"\n", []string{"no pool"}},
		{"bad alias type", "[[pools]]\nname = \"a\"\ntemplate = \"t\"\nalias = 3\n", []string{"alias"}},
		{"bad tagfilter", minimal + "[tagfilter]\nurl = '('\n", []string{"[tagfilter] url"}},
		{"auth without provider", minimal + "[auth]\nfile = \"x\"\n", []string{"[auth] provider"}},
		{"bad toml", "[config\n", []string{"config x"}},
		{"unknown log_level", "[config]\nlog_level = \"verbose\"\n" + minimal, []string{"log_level", "verbose"}},
		{"prefix with a dot", "[config]\nprefix = \"ci.a\"\n" + minimal, []string{"[config] prefix", `"ci.a"`}},
		{"prefix with upper case and underscore", "[config]\nprefix = \"ci-A_\"\n" + minimal, []string{"[config] prefix"}},
		{"prefix too long", "[config]\nprefix = \"" + strings.Repeat("a", 49) + "\"\n" + minimal, []string{"[config] prefix"}},
		{"lifetime past the ceiling", "[config]\nvm_lifetime = 100000\n" + minimal, []string{"[config] vm_lifetime", "at most"}},
		{"negative max_connections", "[config]\nmax_connections = -1\n" + minimal, []string{"[config] max_connections"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("x", tc.text, noEnv)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestConfigGlobalErrorNamesItsKey: a negative global ready_ttl or timeout
// is reported under [config], not as a problem of every pool inheriting it.
func TestConfigGlobalErrorNamesItsKey(t *testing.T) {
	_, err := ParseConfig("x", "[config]\nready_ttl = -5\ntimeout = -1\n"+minimal, noEnv)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "[config] ready_ttl") || !strings.Contains(msg, "[config] timeout") {
		t.Errorf("error %q does not name [config] ready_ttl and timeout", msg)
	}
	if strings.Contains(msg, "[[pools]]") {
		t.Errorf("error %q blames the pool for the global value", msg)
	}
	_, err = ParseConfig("x", "[[pools]]\nname = \"a\"\ntemplate = \"t/a\"\nready_ttl = -3\n", noEnv)
	if err == nil || !strings.Contains(err.Error(), `[[pools]] "a": ready_ttl`) {
		t.Errorf("pool's own negative ready_ttl: %v", err)
	}
}

// TestErrorPrefixNotDoubled: errors that already name their package are
// not prefixed again ("vsphere: vsphere: ...").
func TestErrorPrefixNotDoubled(t *testing.T) {
	cfg, err := ParseConfig("x", minimal+"[providers.vsphere]\nserver = \"\"\n", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = openProvider(context.Background(), cfg, slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("no error for a vsphere provider without a server")
	}
	if msg := err.Error(); strings.Count(msg, "vsphere:") != 1 {
		t.Errorf("error %q: want exactly one vsphere: prefix", msg)
	}
	if got := withPrefix("auth", errors.New("bad")).Error(); got != "auth: bad" {
		t.Errorf("withPrefix: %q", got)
	}
}

func TestConfigEnvOverridesSecrets(t *testing.T) {
	env := map[string]string{"VMPOOLER_VSPHERE_PASSWORD": "s3cret", "VMPOOLER_LISTEN": "127.0.0.1:0"}
	c, err := ParseConfig("x", minimal+"[providers.vsphere]\nserver = \"vc\"\npassword = \"file\"\n", func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Providers.Vsphere.Password; got != "s3cret" {
		t.Errorf("password = %q, want the environment's", got)
	}
	if got := c.Global.Listen; got != "127.0.0.1:0" {
		t.Errorf("listen = %q", got)
	}
	if r := c.redacted(); r.Providers.Vsphere.Password == "s3cret" {
		t.Error("redacted config still holds the password")
	}
}

// Upstream's keys with a meaning here are used; those without one start
// with a warning naming them; a key nobody knows still refuses.
func TestConfigUpstreamKeys(t *testing.T) {
	text := `
[config]
create_folders = true
create_linked_clones = false
clone_target = "cluster1"
manage_host_selection = true
circuit_breaker_enabled = true
[config.backend_weight]
cluster1 = 2

[[pools]]
name = "a"
template = "t/a"
folder = "pools/a"
network = "VM Network"
snapshot_mainMem_ioBlockPages = "2048"
snapshot_mainMem_iowait = 5
dns_plugin = "example"

[providers.vsphere]
simulator = true
connection_pool_size = 5
`
	c, err := ParseConfig("x", text, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	v := c.Providers.Vsphere
	if !v.CreateFolders || v.CreateLinkedClones == nil || *v.CreateLinkedClones {
		t.Errorf("create_folders/create_linked_clones under [config] not applied: %+v", v)
	}
	p := c.Pools[0]
	if p.CloneTarget != "cluster1" || p.Network != "VM Network" || p.SnapshotMainMemIOBlockPages == nil || *p.SnapshotMainMemIOBlockPages != 2048 || p.SnapshotMainMemIOWait == nil || *p.SnapshotMainMemIOWait != 5 {
		t.Errorf("pool = %+v", p)
	}
	all := strings.Join(c.Warnings, "\n")
	for _, k := range []string{"config.manage_host_selection", "config.circuit_breaker_enabled", "config.backend_weight", "pools.dns_plugin", "providers.vsphere.connection_pool_size"} {
		if !strings.Contains(all, k+": upstream's key, ignored here") {
			t.Errorf("no warning for %s in:\n%s", k, all)
		}
	}
	if _, err := ParseConfig("x", text+"bogus_key = 1\n", noEnv); err == nil || !strings.Contains(err.Error(), "providers.vsphere.bogus_key") {
		t.Errorf("an unknown key: %v, want refused", err)
	}
	if _, err := ParseConfig("x", strings.Replace(text, `"2048"`, `"lots"`, 1), noEnv); err == nil {
		t.Error("snapshot_mainMem_ioBlockPages = \"lots\" accepted")
	}
}
