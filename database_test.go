package main

import (
	"bytes"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
)

func TestEtcdConfig(t *testing.T) {
	env := map[string]string{"VMPOOLER_ETCD_USERNAME": "pooler", "VMPOOLER_ETCD_PASSWORD": "s3cret"}
	getenv := func(k string) string { return env[k] }
	c, err := ParseConfig("/etc/vmpooler/vmpooler.toml", fakeConfig("etcd://e1:2379,e2/lab", fakePool("p", 1))+`
[etcd]
ca_file = "ca.pem"
request_timeout = 3
`, getenv)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := c.etcdConfig()
	if err != nil {
		t.Fatal(err)
	}
	if !c.onEtcd() || c.Global.Database != "etcd://e1:2379,e2/lab" || strings.Join(ec.Endpoints, ",") != "e1:2379,e2:2379" || ec.Prefix != "lab/" {
		t.Errorf("database %q: endpoints %v prefix %q (the URL is not a path)", c.Global.Database, ec.Endpoints, ec.Prefix)
	}
	if ec.CAFile != "/etc/vmpooler/ca.pem" || ec.RequestTimeout.Seconds() != 3 || ec.Username != "pooler" || ec.Password != "s3cret" {
		t.Errorf("etcd config %+v", ec)
	}
	if name := c.databaseName(); strings.Contains(name, "s3cret") || name != "etcd://e1:2379,e2:2379/lab" {
		t.Errorf("databaseName %q", name)
	}
	for _, bad := range []struct{ text, want string }{
		{fakeConfig("etcd://e1/lab", fakePool("p", 1)) + "\n[etcd]\nmax_txn_ops = -1\n", "max_txn_ops"},
		{strings.Replace(fakeConfig("etcd://e1/lab", fakePool("p", 1)), "[config]", "[config]\nbackup_dir = \"b\"", 1), "etcdctl snapshot save"},
		{fakeConfig("etcd://", fakePool("p", 1)), "database"},
		{fakeConfig("x.db", fakePool("p", 1)) + "\n[etcd]\nprefix = \"lab\"\n", "say where etcd is"},
	} {
		if _, err := ParseConfig("/x/v.toml", bad.text, getenv); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("config error %v, want one naming %q", err, bad.want)
		}
	}
}

// TestServeOnEtcd runs the pooler with its state on etcd (the embedded
// test server): it fills its pool and hands out VMs, `vmpooler check`
// passes on etcd, backup says what to do instead, and copy-store moves
// the state to a file and back with the instance id.
func TestServeOnEtcd(t *testing.T) {
	srv := etcdtest.Shared(t)
	dir := t.TempDir()
	url := "etcd://" + srv.Endpoint + "/" + uniquePrefix("serve-test")
	cfgPath := filepath.Join(dir, "vmpooler.toml")
	writeConfig(t, cfgPath, fakeConfig(url, fakePool("debian", 3)))
	r := startPooler(t, cfgPath)
	waitReady(t, r.base, map[string]int{"debian": 3})
	code, host := checkout(t, r.base, "debian")
	if code != 200 || host == "" {
		t.Fatalf("checkout on etcd: %d %q", code, host)
	}
	waitReady(t, r.base, map[string]int{"debian": 3})
	if !strings.Contains(r.log.String(), "database="+url) {
		t.Errorf("the log does not name the etcd database:\n%s", r.log)
	}
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	var out, errb bytes.Buffer
	if err := run(t.Context(), []string{"check", "-config", cfgPath, "-list-vms"}, &out, &errb); err != nil {
		t.Fatalf("check on etcd: %v\n%s", err, errb.String())
	}
	if n := len(strings.Fields(out.String())); n != 4 || !strings.Contains(out.String(), host) {
		t.Errorf("check -list-vms listed %d vms, want 4 with %s:\n%s", n, host, out.String())
	}
	err := run(t.Context(), []string{"backup", "-config", cfgPath, "-out", filepath.Join(dir, "b.db")}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "etcdctl snapshot save") {
		t.Errorf("backup on etcd: %v", err)
	}

	file := filepath.Join(dir, "copy.db")
	out.Reset()
	if err := run(t.Context(), []string{"copy-store", "-from", url, "-to", file}, &out, &errb); err != nil {
		t.Fatalf("copy-store to a file: %v", err)
	}
	if !strings.Contains(out.String(), "passes its check") || !strings.Contains(out.String(), "vms") {
		t.Errorf("copy-store said:\n%s", out.String())
	}
	if err := run(t.Context(), []string{"copy-store", "-from", url, "-to", file}, &out, &errb); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("copy-store onto an existing file: %v", err)
	}
	back := url + "-back"
	if err := run(t.Context(), []string{"copy-store", "-from", file, "-to", back}, &out, &errb); err != nil {
		t.Fatalf("copy-store to etcd: %v", err)
	}
	if err := run(t.Context(), []string{"copy-store", "-from", file, "-to", back}, &out, &errb); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("copy-store into a prefix with records: %v", err)
	}
	// The copy is the same pooler: it starts with the same instance id.
	writeConfig(t, cfgPath, fakeConfig(back, fakePool("debian", 3)))
	r2 := startPooler(t, cfgPath)
	if a, b := instanceOf(t, r.log.String()), instanceOf(t, r2.log.String()); a != b {
		t.Errorf("instance %s after copy-store there and back, want %s", b, a)
	}
}

// instanceOf returns the instance id a pooler's log says it opened.
func instanceOf(t *testing.T, log string) string {
	t.Helper()
	_, rest, ok := strings.Cut(log, "database open")
	_, rest, ok2 := strings.Cut(rest, "instance=")
	if !ok || !ok2 || len(rest) < 16 {
		t.Fatalf("no instance in the log:\n%s", log)
	}
	return rest[:16]
}

// TestEtcdDown: with etcd gone, the API answers 503 with a JSON body
// within the request timeout (never a hang or a 500), and a pooler that
// cannot reach etcd at start says so.
func TestEtcdDown(t *testing.T) {
	srv := etcdtest.Start(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "vmpooler.toml")
	text := fakeConfig("etcd://"+srv.Endpoint+"/"+uniquePrefix("down"), fakePool("debian", 2)) + "\n[etcd]\nrequest_timeout = 1\ndial_timeout = 1\n"
	writeConfig(t, cfgPath, text)
	r := startPooler(t, cfgPath)
	waitReady(t, r.base, map[string]int{"debian": 2})
	if code, _ := do(t, "GET", r.base+"/healthcheck", "", "", ""); code != http.StatusOK {
		t.Errorf("healthcheck with etcd up: %d", code)
	}
	if m := scrape(t, r.base); !strings.Contains(m, "vmpooler_database_up 1") {
		t.Errorf("metrics with etcd up lack vmpooler_database_up 1")
	}
	srv.Stop()
	// A load balancer takes the replica out; monitoring still scrapes it.
	if code, body := do(t, "GET", r.base+"/healthcheck", "", "", ""); code != http.StatusServiceUnavailable || !strings.Contains(fmt.Sprint(body["error"]), "database (etcd)") {
		t.Errorf("healthcheck with etcd down: %d %v, want 503 naming the database", code, body)
	}
	if m := scrape(t, r.base); !strings.Contains(m, "vmpooler_database_up 0") || !strings.Contains(m, `vmpooler_ready{pool="debian"} 2`) {
		t.Errorf("metrics with etcd down: want vmpooler_database_up 0 and the last counts:\n%s", grepLines(m, "vmpooler_"))
	}
	start := time.Now()
	code, body := do(t, "POST", r.base+"/api/v1/vm/debian", "", "", "")
	took := time.Since(start)
	if code != http.StatusServiceUnavailable || body["ok"] != false || !strings.Contains(fmt.Sprint(body["error"]), "etcd") {
		t.Errorf("checkout with etcd down: %d %v, want 503 naming etcd", code, body)
	}
	// Where etcd is goes to the log, not to clients.
	if strings.Contains(fmt.Sprint(body), srv.Endpoint) {
		t.Errorf("the 503 names etcd's endpoint: %v", body)
	}
	if line := grepLines(r.log.String(), "a service it needs is unavailable"); !strings.Contains(line, srv.Endpoint) {
		t.Errorf("log of the 503: %q, want its cause naming etcd's endpoint %s", line, srv.Endpoint)
	}
	if took > 10*time.Second {
		t.Errorf("checkout with etcd down took %v", took)
	}
	r.stop()

	var out, errb bytes.Buffer
	err := run(t.Context(), []string{"check", "-config", cfgPath}, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "etcd") || !strings.Contains(err.Error(), srv.Endpoint) {
		t.Errorf("check with etcd down: %v, want an error naming etcd and its endpoint", err)
	}
}

// uniquePrefix is an etcd prefix of its own for one run of a test, so
// that -count=N runs do not meet the keys of the runs before.
func uniquePrefix(name string) string {
	return name + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}
