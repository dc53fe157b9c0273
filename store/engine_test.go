package store

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/store/etcd"
	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
)

// The store's tests are one suite for both engines. envTestEngine selects
// the engine: unset or "bbolt" (a file in a temporary directory), or
// "etcd" (the embedded etcd server of this test binary, a key prefix per
// store). TestMain runs the suite on bbolt, then once more on etcd in a
// child process of this same test binary, so `go test ./store` runs both.
const envTestEngine = "VMPOOLER_TEST_STORE"

// etcdBatch is the batch size of a store on etcd's default --max-txn-ops
// (128), as main sets it: a record takes up to two writes and a compare.
const etcdBatch = etcd.DefaultMaxTxnOps / 3

func onEtcd() bool { return os.Getenv(envTestEngine) == "etcd" }

// needFile skips a test of the bbolt file itself (its lock, pages,
// migrations, backups, group commit) on the etcd run.
func needFile(tb testing.TB) {
	tb.Helper()
	if onEtcd() {
		tb.Skip("tests the bbolt file; the etcd run skips it")
	}
}

// runOnce skips, on the etcd run, a test that opens its own etcd stores
// beside the bbolt one: the bbolt run covers it.
func runOnce(tb testing.TB) {
	tb.Helper()
	if onEtcd() {
		tb.Skip("opens its own etcd stores: the bbolt run covers it")
	}
}

// etcdEngine opens an engine on the test binary's etcd server under a
// prefix named after path, so that the same path finds the same data.
func etcdEngine(tb testing.TB, path string) *etcd.Engine {
	tb.Helper()
	srv := etcdtest.Shared(tb)
	name := strings.NewReplacer("/", "_", " ", "_").Replace(strings.TrimPrefix(path, os.TempDir()))
	e, err := etcd.Open(etcd.Config{Endpoints: srv.Endpoints(), Prefix: "storetest/" + name + "/"})
	if err != nil {
		tb.Fatal(err)
	}
	return e
}

func TestMain(m *testing.M) {
	code := etcdtest.Run(m)
	if code != 0 || os.Getenv(envTestEngine) != "" {
		os.Exit(code)
	}
	os.Stdout.WriteString("store: the same suite again, on etcd (" + envTestEngine + "=etcd)\n")
	// The same suite on etcd. Benchmarks run once, in this process: they
	// name their engine.
	cmd := exec.Command(os.Args[0], append(os.Args[1:], "-test.bench=^$")...)
	cmd.Env = append(os.Environ(), envTestEngine+"=etcd")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(max(ee.ExitCode(), 1))
		}
		os.Stderr.WriteString("store tests on etcd: " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Exit(0)
}
