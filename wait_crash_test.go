package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vmpooler/vmpooler/internal/nettest"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/internal/testenv"
	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
)

// TestMain lets a test start this test binary as a pooler child process
// (VMPOOLER_TEST_CHILD=serve), to kill it with SIGKILL.
func TestMain(m *testing.M) {
	if os.Getenv("VMPOOLER_TEST_CHILD") == "serve" {
		if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "vmpooler:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(etcdtest.Run(m))
}

// A pooler killed (SIGKILL) while 50 checkouts wait hands nothing out: no
// VM is running afterwards and the store passes its check (the clones made
// for the waiters are pending records, picked up by the next start).
func TestCrashWhileCheckoutsWait(t *testing.T) {
	testenv.SkipIfShort(t, "starts a pooler process")
	addr := nettest.ClosedAddr(t)
	dir, cfgPath := tempConfig(t, `
[config]
listen = "`+addr+`"
database = "vmpooler.db"
check_loop_delay = 1
max_checkout_wait = 120

[[pools]]
name = "slow"
template = "templates/slow"
folder = "vmpooler/slow"
size = 0

[providers.vsphere]
simulator = true
boot_delay = 600   # clones never become ready while the test runs
`)
	child := exec.Command(os.Args[0], "-config", cfgPath)
	child.Env = append(os.Environ(), "VMPOOLER_TEST_CHILD=serve")
	logs := &logBuf{}
	child.Stdout, child.Stderr = logs, logs
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	base := "http://" + addr
	waitFor(t, "child pooler listening", func() (bool, any) {
		resp, err := http.Get(base + "/api/v1/status")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.StatusCode
	})

	var wg sync.WaitGroup
	results := make(chan int, 50)
	for range 50 {
		wg.Go(func() {
			resp, err := http.Post(base+"/api/v1/vm/slow?wait=120", "application/json", nil)
			if err != nil {
				results <- 0 // the connection died with the pooler
				return
			}
			resp.Body.Close()
			results <- resp.StatusCode
		})
	}
	waitFor(t, "50 checkouts waiting", func() (bool, any) {
		var st struct {
			Pools map[string]struct {
				Waiting struct{ Count int } `json:"waiting"`
			} `json:"pools"`
		}
		getJSON(t, base+"/api/v1/status", &st)
		return st.Pools["slow"].Waiting.Count == 50, st.Pools["slow"].Waiting.Count
	})
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	wg.Wait()
	close(results)
	for code := range results {
		if code == 200 {
			t.Errorf("a waiting checkout got a VM: the pool had none ready")
		}
	}

	st := storetest.MustOpen(t, storetest.Path(filepath.Join(dir, "vmpooler.db")))
	if err := st.Check(); err != nil {
		t.Errorf("store after the crash: %v", err)
	}
	if c := st.Counts()["slow"]; c.Running != 0 {
		t.Errorf("after the crash %d VMs are running: handed out to nobody", c.Running)
	}
	if strings.Contains(logs.String(), "panic") {
		t.Errorf("the pooler panicked:\n%s", logs)
	}
}
