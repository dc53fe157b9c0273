package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/vmpooler/vmpooler/internal/logtest"
	"github.com/vmpooler/vmpooler/internal/testenv"
)

// logBuf is the goroutine-safe log sink the root package's tests share.
type logBuf = logtest.Buffer

// running is a pooler started by startPooler.
type running struct {
	d    *daemon
	base string
	log  *logBuf
	stop func() error // cancels, as SIGTERM does, and returns runServe's error
}

// startPooler runs runServe on cfgPath until the test ends (or stop).
func startPooler(t *testing.T, cfgPath string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *daemon, 1)
	done := make(chan error, 1)
	logs := &logBuf{}
	go func() { done <- runServe(ctx, []string{"-config", cfgPath}, logs, ready) }()
	r := &running{log: logs}
	select {
	case r.d = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatal("pooler did not start")
	}
	r.base = "http://" + r.d.addr
	var once sync.Once
	var err error
	r.stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				err = fmt.Errorf("pooler did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return r
}

// fakeConfig is a configuration on the fake provider (instant clones).
func fakeConfig(database string, pools string) string {
	return `
[config]
listen = "127.0.0.1:0"
database = "` + database + `"
check_loop_delay = 1
log_level = "info"
` + pools + `
[providers.fake]
`
}

func fakePool(name string, size int) string {
	return fmt.Sprintf("\n[[pools]]\nname = %q\ntemplate = \"templates/%s\"\nfolder = \"vmpooler/%s\"\nsize = %d\n", name, name, name, size)
}

// tempConfig writes text as vmpooler.toml in a fresh directory and returns
// the directory and the file's path.
func tempConfig(t *testing.T, text string) (dir, cfgPath string) {
	t.Helper()
	dir = t.TempDir()
	cfgPath = filepath.Join(dir, "vmpooler.toml")
	writeConfig(t, cfgPath, text)
	return dir, cfgPath
}

func writeConfig(t testing.TB, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// status returns ready counts per pool from /api/v1/status.
func status(t *testing.T, base string) map[string]int {
	t.Helper()
	var st struct {
		Pools map[string]struct{ Ready int } `json:"pools"`
	}
	getJSON(t, base+"/api/v1/status", &st)
	out := make(map[string]int)
	for name, p := range st.Pools {
		out[name] = p.Ready
	}
	return out
}

// waitFor polls cond (bounded) and fails with what it last saw.
func waitFor(t testing.TB, what string, cond func() (bool, any)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, seen := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: gave up; last saw %v", what, seen)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitReady(t *testing.T, base string, want map[string]int) {
	t.Helper()
	waitFor(t, "pools ready", func() (bool, any) {
		got := status(t, base)
		for pool, n := range want {
			if got[pool] != n {
				return false, got
			}
		}
		return len(got) == len(want), got
	})
}

func checkout(t *testing.T, base, pool string) (int, string) {
	t.Helper()
	resp, err := http.Post(base+"/api/v1/vm/"+pool, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var out map[string]any
	json.Unmarshal(body, &out)
	if resp.StatusCode != 200 {
		return resp.StatusCode, ""
	}
	host, _ := out[pool].(map[string]any)["hostname"].(string)
	return resp.StatusCode, host
}

// A pooler started from another working directory with a relative
// database path uses the database beside its configuration file, says
// so, and announces a new database loudly; the shipped example works when
// copied to another directory.
func TestStartFromAnotherDirectory(t *testing.T) {
	testenv.SkipIfShort(t, "starts the simulator")
	data, err := os.ReadFile("vmpooler.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	cfgDir, workDir := t.TempDir(), t.TempDir()
	cfgPath := filepath.Join(cfgDir, "vmpooler.toml")
	text := strings.Replace(string(data), `listen = "127.0.0.1:4567"`, `listen = "127.0.0.1:0"`, 1)
	// One clone at a time: govmomi v0.56.0's simulator has a data race
	// (Datastore.resolve against createVM) when clones with a datastore
	// run concurrently, which -race reports.
	text = strings.Replace(text, "\ntask_limit = 10\n", "\ntask_limit = 1\n", 1)
	if !strings.Contains(text, "\ntask_limit = 1\n") {
		t.Fatal("the example has no task_limit = 10 line any more; update this test")
	}
	writeConfig(t, cfgPath, text)
	t.Chdir(workDir)
	r := startPooler(t, cfgPath)
	db := filepath.Join(cfgDir, "vmpooler.db")
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("database beside the config: %v", err)
	}
	if _, err := os.Stat(filepath.Join(workDir, "vmpooler.db")); err == nil {
		t.Error("a database was created in the working directory")
	}
	if !strings.Contains(r.log.String(), "created new database at "+db) {
		t.Errorf("new database not announced:\n%s", r.log)
	}
	if !strings.Contains(r.log.String(), "database="+db) {
		t.Errorf("start-up log does not name the absolute database path:\n%s", r.log)
	}
	waitFor(t, "example pools fill", func() (bool, any) {
		st := status(t, r.base)
		return st["debian-12-x86_64"] > 0, st
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	// The second start uses the same file and does not announce it.
	r2 := startPooler(t, cfgPath)
	if strings.Contains(r2.log.String(), "created new database") {
		t.Errorf("existing database announced as new:\n%s", r2.log)
	}
}

// A config that does not load is refused, every reason logged, and the
// old configuration stays; a good one adds, resizes and removes pools,
// changes the log level, and /config shows it. Reload is driven through
// daemon.reload, the function SIGHUP calls.
func TestReload(t *testing.T) {
	dir, cfgPath := tempConfig(t, fakeConfig("vmpooler.db", fakePool("a", 2)+fakePool("b", 1)+fakePool("gone", 2)))
	r := startPooler(t, cfgPath)
	waitReady(t, r.base, map[string]int{"a": 2, "b": 1, "gone": 2})
	if code, _ := checkout(t, r.base, "gone"); code != 200 {
		t.Fatalf("checkout gone: %d", code)
	}

	t.Run("Refused", func(t *testing.T) {
		writeConfig(t, cfgPath, fakeConfig("vmpooler.db", fakePool("a", -1)+"\n[config2]\n"))
		if err := r.d.reload(); err == nil {
			t.Fatal("reload of an invalid file: no error")
		}
		for _, want := range []string{"reload refused", "size must not be negative", "unknown keys"} {
			if !strings.Contains(r.log.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, r.log)
			}
		}
		os.Remove(cfgPath)
		if err := r.d.reload(); err == nil {
			t.Error("reload of a missing file: no error")
		}
		if got := r.d.svc.Pools(); len(got) != 3 {
			t.Errorf("pools after refused reloads = %v", got)
		}
	})

	t.Run("Applied", func(t *testing.T) {
		text := fakeConfig("other.db", fakePool("a", 4)+fakePool("b", 1)+fakePool("new", 2))
		text = strings.Replace(text, `listen = "127.0.0.1:0"`, `listen = "127.0.0.1:1"`, 1)
		text = strings.Replace(text, `log_level = "info"`, `log_level = "debug"`, 1)
		writeConfig(t, cfgPath, text)
		if err := r.d.reload(); err != nil {
			t.Fatal(err)
		}
		waitReady(t, r.base, map[string]int{"a": 4, "b": 1, "new": 2})
		if code, _ := checkout(t, r.base, "gone"); code != 404 {
			t.Errorf("checkout of a removed pool: %d, want 404", code)
		}
		waitFor(t, "removed pool's ready VMs destroyed, its running VM kept", func() (bool, any) {
			c := r.d.st.Counts()["gone"]
			return c.Ready == 0 && c.Pending == 0 && c.Completed == 0 && c.Running == 1, c
		})
		for _, want := range []string{
			"[config] listen cannot change while running",
			"[config] database cannot change while running",
			`msg="reload: pool changed" pool=a changes="size: 2 -> 4"`,
			"added=new removed=gone",
			"log_level: info -> debug",
			"pool removed from the configuration",
		} {
			if !strings.Contains(r.log.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, r.log)
			}
		}
		if !r.d.logger.Enabled(context.Background(), -4) {
			t.Error("log level not lowered to debug")
		}
		var cfg struct {
			Config struct {
				Config struct {
					Listen   string `json:"listen"`
					Database string `json:"database"`
					LogLevel string `json:"log_level"`
				} `json:"config"`
			} `json:"config"`
			Pools []struct {
				Name string `json:"name"`
				Size int    `json:"size"`
			} `json:"pool_configuration"`
		}
		getJSON(t, r.base+"/api/v1/config", &cfg)
		c := cfg.Config.Config
		if c.Listen != "127.0.0.1:0" || c.Database != filepath.Join(dir, "vmpooler.db") || c.LogLevel != "debug" {
			t.Errorf("/config shows %+v, want the effective listen, database and the new log level", c)
		}
		if len(cfg.Pools) != 3 || cfg.Pools[0].Size != 4 || cfg.Pools[2].Name != "new" {
			t.Errorf("/config pools = %+v", cfg.Pools)
		}
	})
}

func htpasswdFile(t *testing.T, path, user, password string) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	writeConfig(t, path, user+":"+string(h)+"\n")
}

// do sends a request, as user when not empty, and returns the status and
// the JSON body.
func do(t *testing.T, method, url, user, password, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	return send(t, req)
}

// doToken sends a request with a token and returns the status and the JSON body.
func doToken(t *testing.T, method, url, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	req.Header.Set("X-AUTH-TOKEN", token)
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// A reload switches the htpasswd file (a file that does not load is
// refused and the old users stay) and the tag rules.
func TestReloadAuthFileAndTagRules(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vmpooler.toml")
	htpasswdFile(t, filepath.Join(dir, "h1"), "alice", "pw1")
	htpasswdFile(t, filepath.Join(dir, "h2"), "bob", "pw2")
	cfg := func(file, tags, filter string) string {
		text := strings.Replace(fakeConfig("vmpooler.db", fakePool("a", 1)), "[config]\n", "[config]\nallowed_tags = "+tags+"\n", 1)
		return text + "\n[auth]\nprovider = \"htpasswd\"\nfile = \"" + file + "\"\n" + filter
	}
	writeConfig(t, cfgPath, cfg("h1", `["team"]`, ""))
	r := startPooler(t, cfgPath)
	waitReady(t, r.base, map[string]int{"a": 1})
	if code, _ := do(t, "POST", r.base+"/api/v1/token", "alice", "pw1", ""); code != 200 {
		t.Fatalf("token for alice: %d", code)
	}
	_, host := checkout(t, r.base, "a")
	if code, _ := do(t, "PUT", r.base+"/api/v1/vm/"+host, "", "", `{"tags":{"url":"http://x/"}}`); code != 400 {
		t.Errorf("PUT of a tag not allowed: %d, want 400", code)
	}

	writeConfig(t, cfgPath, cfg("h2", `["team", "url"]`, "[tagfilter]\nurl = '^(.*)/'\n"))
	if err := r.d.reload(); err != nil {
		t.Fatal(err)
	}
	if code, _ := do(t, "POST", r.base+"/api/v1/token", "bob", "pw2", ""); code != 200 {
		t.Errorf("token for bob from the new file: %d", code)
	}
	if code, _ := do(t, "POST", r.base+"/api/v1/token", "alice", "pw1", ""); code != 401 {
		t.Errorf("token for alice of the old file: %d, want 401", code)
	}
	if code, out := do(t, "PUT", r.base+"/api/v1/vm/"+host, "", "", `{"tags":{"url":"http://x/"}}`); code != 200 {
		t.Errorf("PUT of a newly allowed tag: %d %v", code, out)
	}
	_, vm := do(t, "GET", r.base+"/api/v1/vm/"+host, "", "", "")
	if tags, _ := vm[host].(map[string]any)["tags"].(map[string]any); tags["url"] != "http://x" {
		t.Errorf("tag after the new [tagfilter]: %v", vm[host])
	}

	writeConfig(t, cfgPath, cfg("missing", `["team"]`, ""))
	if err := r.d.reload(); err == nil {
		t.Error("reload to a missing htpasswd file: no error")
	}
	if code, _ := do(t, "POST", r.base+"/api/v1/token", "bob", "pw2", ""); code != 200 {
		t.Errorf("token for bob after a refused reload: %d", code)
	}
	if code, _ := do(t, "PUT", r.base+"/api/v1/vm/"+host, "", "", `{"tags":{"url":"y"}}`); code != 200 {
		t.Errorf("a refused reload changed allowed_tags: %d", code)
	}
}

func TestInventorySaysItListsAFreshSimulator(t *testing.T) {
	testenv.SkipIfShort(t, "starts the simulator")
	var stderr bytes.Buffer
	if err := run(t.Context(), []string{"inventory", "-config", "vmpooler.toml.example"}, io.Discard, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr.String(), "listing a FRESH in-process simulator") {
		t.Errorf("stderr: %s", stderr.String())
	}
}
