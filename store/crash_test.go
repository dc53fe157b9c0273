package store

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// crashEnv names the database a re-executed test binary works on until it
// is killed (see TestCrash).
const crashEnv = "VMPOOLER_STORE_CRASH_DB"

// TestCrash re-executes the test binary as a child that changes states and
// checks out VMs in a loop, SIGKILLs it at a random moment, reopens the file
// and checks it: bbolt's consistency, every VM in exactly one index that
// matches its record, counts equal to the indexes, and every checkout the
// child saw succeed still handed out (never back in ready).
func TestCrash(t *testing.T) {
	needFile(t)
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path) // does not return
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	start := time.Now()
	for i := 0; i < 8 && time.Since(start) < 5*time.Second; i++ {
		out, stderr := runAndKill(t, path)
		// By hand, not MustOpenStoreAt: each run reopens the file the
		// next child works on, so it is checked and closed here.
		s := New(path)
		if err := s.Open(); err != nil {
			t.Fatalf("run %d: reopen: %v", i, err)
		}
		mustCheck(t, s)
		t.Logf("run %d: %d checkouts reported, counts %v", i, len(out), s.Counts())
		for _, h := range out {
			vm, err := s.Get(h)
			if err == nil && (vm.State == StateReady || vm.State == StatePending) {
				t.Errorf("run %d: %s was checked out but is %s after the crash", i, h, vm.State)
			} else if err != nil && errs.ErrorCode(err) != errs.ENOTFOUND {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.Logf("child stderr:\n%s", stderr)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
	}
}

// runAndKill starts the child, SIGKILLs it 20–200 ms after it opened the
// file, and returns the hosts it reported checked out and its stderr.
func runAndKill(t *testing.T, path string) (checkedOut []string, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrash$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	var errb strings.Builder
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if line == "open" {
				close(opened)
			} else if h, ok := strings.CutPrefix(line, "co "); ok {
				checkedOut = append(checkedOut, h)
			}
		}
	}()
	select {
	case <-opened:
	case <-done:
		cmd.Wait()
		t.Fatalf("child ended before opening the store: %s", errb.String())
	}
	time.Sleep(randDuration(20*time.Millisecond, 200*time.Millisecond))
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-done
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: got %v, want killed; stderr:\n%s", err, errb.String())
	}
	return checkedOut, errb.String()
}

func randDuration(lo, hi time.Duration) time.Duration {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(hi-lo)))
	if err != nil {
		panic(err)
	}
	return lo + time.Duration(n.Int64())
}

// crashChild works on the store at path until killed, reporting "open"
// once the file is open and "co <host>" after every checkout that returned.
// It stops by itself after 10 seconds in case the parent is gone.
func crashChild(path string) {
	s := New(path)
	s.Timeout = 5 * time.Second
	s.Retention = 50 * time.Millisecond
	if err := s.Open(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex // one stdout line at a time
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Printf(format+"\n", args...)
		mu.Unlock()
	}
	fail := func(err error) {
		switch errs.ErrorCode(err) {
		case "", errs.EEMPTY, errs.ENOTFOUND, errs.ECONFLICT:
			return
		}
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	say("open")
	time.AfterFunc(10*time.Second, func() { os.Exit(0) })

	prefix := rand.Text()[:6]
	var seq atomic.Int64
	host := func() string { return fmt.Sprintf("%s-%d", prefix, seq.Add(1)) }
	for _, pool := range []string{"a", "b"} {
		go func() { // producer: pending → cloned → ready, a few fail
			for {
				h := host()
				fail(s.AddPending(VM{Hostname: h, Pool: pool}))
				fail(s.MarkCloned(h))
				if seq.Load()%7 == 0 {
					fail(s.Fail(h, "", "clone failed"))
				} else {
					fail(s.MarkReady(h, "10.0.0.1"))
				}
			}
		}()
	}
	for i := range 8 { // consumers: checkout, modify, return or fail
		go func() {
			req := CheckoutRequest{Pools: []PoolCount{{"a", 1}}}
			if i%2 == 1 {
				req.Pools = append(req.Pools, PoolCount{"b", 2})
			}
			for {
				vms, err := s.Checkout(req)
				fail(err)
				for _, vm := range vms {
					say("co %s", vm.Hostname)
					_, err := s.Modify(vm.Hostname, 2, map[string]string{"n": vm.Hostname[len(vm.Hostname)-1:]})
					fail(err)
					fail(s.Return(vm.Hostname, "done", Anyone))
				}
			}
		}()
	}
	go func() { // ondemand requests, some deleted while they fill
		for n := 0; ; n++ {
			id := fmt.Sprintf("%s-r%d", prefix, n)
			fail(s.CreateRequest(Request{ID: id, Requested: []PoolCount{{"a", 1}, {"b", 1}}}))
			for _, pool := range []string{"a", "b"} {
				h := host()
				fail(s.AddPending(VM{Hostname: h, Pool: pool, RequestID: id}))
				if n%3 == 0 && pool == "b" {
					fail(s.FinishRequest(id, RequestDeleted, ""))
				}
				fail(s.MarkReady(h, ""))
			}
		}
	}()
	for { // reaper: destroy completed, purge destroyed
		for _, pool := range []string{"a", "b"} {
			vms, err := s.List(pool, StateCompleted)
			fail(err)
			for _, vm := range vms {
				fail(s.Destroy(vm.Hostname, "reaped"))
			}
		}
		_, err := s.Purge()
		fail(err)
	}
}
