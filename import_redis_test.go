package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/internal/nettest"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/store"
)

// startRedis runs a throw-away redis-server on a loopback port for the
// test and returns its URL and a client to fill it.
func startRedis(t *testing.T) (string, *redis.Client) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not installed (Debian package redis-server; .ci/run installs it)")
	}
	port := nettest.ClosedPort(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "no", "--dir", dir, "--protected-mode", "yes")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	url := fmt.Sprintf("redis://127.0.0.1:%d/3", port)
	opts, _ := redis.ParseURL(url)
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	for i := 0; ; i++ {
		if rdb.Ping(context.Background()).Err() == nil {
			break
		} else if i > 100 {
			t.Fatalf("redis-server did not start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return url, rdb
}

// rubyTime is upstream's timestamp format (Ruby's Time#to_s).
func rubyTime(t time.Time) string { return t.Format("2006-01-02 15:04:05 -0700") }

// startUpstream starts a Redis holding upstream's keys (fillUpstream).
func startUpstream(t *testing.T) (url string, rdb *redis.Client, checkout time.Time) {
	t.Helper()
	url, rdb = startRedis(t)
	return url, rdb, fillUpstream(t, rdb)
}

// fillUpstream writes the keys upstream vmpooler writes (v1 routes,
// helpers.rb, pool_manager.rb) for two tokens and a few VMs, checked out
// two hours ago; it returns that checkout time.
func fillUpstream(t *testing.T, rdb *redis.Client) (checkout time.Time) {
	t.Helper()
	checkout = time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(rdb.HSet(ctx, "vmpooler__token__abcdefghijklmnopqrstuvwxyz012345", "user", "alice",
		"created", "2025-01-02 03:04:05 +0000", "last", "2025-06-07 08:09:10 +0200").Err())
	must(rdb.HSet(ctx, "vmpooler__token__bcdefghijklmnopqrstuvwxyz0123456", "user", "bob",
		"created", "2025-02-03 04:05:06 +0000").Err())
	must(rdb.HSet(ctx, "vmpooler__token__nouser0000000000000000000000000x", "created", "2025-02-03 04:05:06 +0000").Err())
	must(rdb.Set(ctx, "vmpooler__token__notahash000000000000000000000000", "x", 0).Err())
	// A VM checked out with alice's token (lifetime set: vm_lifetime_auth).
	must(rdb.HSet(ctx, "vmpooler__vm__upstreamvm1", "clone", rubyTime(checkout.Add(-time.Hour)),
		"template", "a", "pool", "a", "domain", "example.com", "ip", "192.0.2.10",
		"checkout", rubyTime(checkout), "token:token", "abcdefghijklmnopqrstuvwxyz012345",
		"token:user", "alice", "lifetime", "48", "tag:project", "migration").Err())
	// An anonymous checkout: no lifetime field (upstream's vm_lifetime).
	must(rdb.HSet(ctx, "vmpooler__vm__upstreamvm2", "clone", rubyTime(checkout), "template", "a",
		"checkout", rubyTime(checkout)).Err())
	must(rdb.HSet(ctx, "vmpooler__vm__upstreamvm4", "template", "a", "checkout", "yesterday").Err())
	must(rdb.SAdd(ctx, "vmpooler__running__a", "upstreamvm1", "upstreamvm2", "upstreamvm3", "upstreamvm4").Err())
	must(rdb.SAdd(ctx, "vmpooler__ready__a", "upstreamready1").Err())
	must(rdb.SAdd(ctx, "vmpooler__pending__a", "upstreampending1").Err())
	must(rdb.SAdd(ctx, "vmpooler__running__gone", "upstreamgone1").Err())
	must(rdb.HSet(ctx, "vmpooler__vm__upstreamgone1", "checkout", rubyTime(checkout)).Err())
	return checkout
}

// commandStats returns the commands Redis has run since CONFIG RESETSTAT.
func commandStats(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, l := range strings.Split(info, "\n") {
		if name, ok := strings.CutPrefix(l, "cmdstat_"); ok {
			cmds = append(cmds, name[:strings.IndexByte(name, ':')])
		}
	}
	return cmds
}

// TestImportRedis: tokens and running VMs of upstream's Redis come over
// with their times, user, lifetime and tags; the rest is skipped and said;
// Redis is only read; a second run imports nothing; a running pooler's
// database is refused.
func TestImportRedis(t *testing.T) {
	url, rdb, checkout := startUpstream(t)
	db, cfg := minimalConfig(t)
	ctx := context.Background()
	if err := rdb.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(ctx, []string{"import-redis", "-config", cfg, url}, &out, io.Discard); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	for _, c := range commandStats(t, rdb) {
		switch c {
		case "scan", "hgetall", "smembers", "get": // the import's reads
		case "hello", "select", "auth", "info", "config|resetstat": // the connection's handshake; this test's
		default:
			t.Errorf("import ran Redis command %q; only reads are allowed", c)
		}
	}
	report := out.String()
	for _, want := range []string{
		"tokens: 2 imported, 2 skipped", "running VMs: 2 imported, 3 skipped",
		"skipped vm upstreamvm3: no vmpooler__vm__ hash", "skipped vm upstreamvm4: checkout time",
		`skipped vm upstreamgone1: pool "gone" is not in`, "not imported: 1 ready VMs of pool a",
		"not imported: 1 pending VMs of pool a", "destroys each at the end of its lifetime",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	if strings.Contains(report, "nouser0000") || strings.Contains(report, "notahash0000") {
		t.Errorf("the report shows a token:\n%s", report)
	}

	st := storetest.MustOpen(t, storetest.Path(db))
	tok, err := st.GetToken("abcdefghijklmnopqrstuvwxyz012345")
	if err != nil {
		t.Fatal(err)
	}
	if tok.User != "alice" || !tok.Created.Equal(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)) ||
		!tok.LastUsed.Equal(time.Date(2025, 6, 7, 6, 9, 10, 0, time.UTC)) {
		t.Errorf("token = %+v", tok)
	}
	if toks, _ := st.TokensByUser("bob"); len(toks) != 1 {
		t.Errorf("bob's tokens: %d, want 1 (listed by user)", len(toks))
	}
	vm, err := st.Get("upstreamvm1")
	if err != nil {
		t.Fatal(err)
	}
	if vm.State != store.StateRunning || vm.Pool != "a" || vm.Template != "t/a" || !vm.CheckedOut.Equal(checkout) ||
		vm.Lifetime != 48 || vm.User != "alice" || vm.Tags["project"] != "migration" || vm.IP != "192.0.2.10" {
		t.Errorf("vm = %+v", vm)
	}
	if vm2, err := st.Get("upstreamvm2"); err != nil || vm2.Lifetime != 0 || vm2.User != "" {
		t.Errorf("vm2 = %+v, %v; want lifetime 0 (the default), anonymous", vm2, err)
	}
	if _, err := st.Get("upstreamready1"); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("a ready VM was imported: %v", err)
	}

	// The pooler holds the database: refused.
	err = run(ctx, []string{"import-redis", "-config", cfg, url}, io.Discard, io.Discard)
	if !errors.Is(err, store.ErrInUse) || !strings.Contains(err.Error(), "stop the pooler") {
		t.Errorf("import into a held database: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	out.Reset()
	if err := run(ctx, []string{"import-redis", "-config", cfg, url}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "tokens: 0 imported, 4 skipped") || !strings.Contains(out.String(), "running VMs: 0 imported, 5 skipped") ||
		!strings.Contains(out.String(), "already in the database") {
		t.Errorf("second run:\n%s", out.String())
	}
}

func TestImportRedisBadInput(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "vmpooler.toml")
	writeConfig(t, cfg, "[config]\ndatabase = \"x.db\"\n"+minimal)
	for name, args := range map[string][]string{
		"no url":     {"import-redis", "-config", cfg},
		"bad scheme": {"import-redis", "-config", cfg, "http://127.0.0.1:1/0"},
		"bad config": {"import-redis", "-config", filepath.Join(dir, "none.toml"), "redis://127.0.0.1:1/0"},
	} {
		if err := run(context.Background(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	// Nothing listens: a clear error that shows no password.
	err := run(context.Background(), []string{"import-redis", "-config", cfg, "redis://:SECRETPW@127.0.0.1:1/0"}, io.Discard, io.Discard)
	if err == nil || strings.Contains(err.Error(), "SECRETPW") {
		t.Errorf("unreachable Redis: %v", err)
	}
}

// TestImportRedisThenServe: an upstream token checks out from this pooler
// (X-AUTH-TOKEN gives vm_lifetime_auth) and an imported running VM keeps
// its checkout time and remaining lifetime in GET /vm/<host>.
func TestImportRedisThenServe(t *testing.T) {
	url, _, checkout := startUpstream(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "vmpooler.db")
	cfg := filepath.Join(dir, "vmpooler.toml")
	text := strings.Replace(fakeConfig(db, fakePool("a", 1)), "[providers.fake]",
		"[auth]\nprovider = \"dummy\"\n[providers.fake]\nvms = [\"vmpooler/a/upstreamvm1\", \"vmpooler/a/upstreamvm2\"]", 1)
	text = strings.Replace(text, "[config]", "[config]\nvm_lifetime = 12\nvm_lifetime_auth = 24", 1)
	writeConfig(t, cfg, text)
	if err := run(context.Background(), []string{"import-redis", "-config", cfg, url}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	r := startPooler(t, cfg)
	waitReady(t, r.base, map[string]int{"a": 1})

	code, co := doToken(t, "POST", r.base+"/api/v1/vm/a", "abcdefghijklmnopqrstuvwxyz012345")
	host, _ := co["a"].(map[string]any)["hostname"].(string)
	if code != 200 || host == "" {
		t.Fatalf("checkout with the upstream token: %d %v", code, co)
	}
	_, got := do(t, "GET", r.base+"/api/v1/vm/"+host, "", "", "")
	if l := got[host].(map[string]any)["lifetime"]; l != 24.0 {
		t.Errorf("lifetime with the upstream token = %v, want vm_lifetime_auth 24", l)
	}

	for _, c := range []struct {
		host     string
		lifetime float64
	}{{"upstreamvm1", 48}, {"upstreamvm2", 12}} {
		_, got := do(t, "GET", r.base+"/api/v1/vm/"+c.host+".example.com", "", "", "")
		v, _ := got[c.host].(map[string]any)
		if v == nil {
			t.Fatalf("GET /vm/%s: %v", c.host, got)
		}
		if v["state"] != "running" || v["start_time"] != checkout.UTC().Format(time.RFC3339) && v["start_time"] != checkout.Format(time.RFC3339) {
			t.Errorf("%s: state %v start_time %v, want running, %s", c.host, v["state"], v["start_time"], checkout.Format(time.RFC3339))
		}
		rem, _ := v["remaining"].(float64)
		if v["lifetime"] != c.lifetime || math.Abs(rem-(c.lifetime-2)) > 0.05 {
			t.Errorf("%s: lifetime %v remaining %v, want %v and %v", c.host, v["lifetime"], v["remaining"], c.lifetime, c.lifetime-2)
		}
	}
}
