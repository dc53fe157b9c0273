package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/nettest"
	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
)

// The cluster tests run three pooler replicas (child processes of this
// test binary) on a three-member etcd cluster (embedded in this process)
// and one standalone vCenter simulator (a child process, so that vCenter
// outlives the poolers). They take minutes, so they run only when
// VMPOOLER_CLUSTER=1 (.ci/run sets it: go test -run Cluster).
const envCluster = "VMPOOLER_CLUSTER"

// clusterLeaseTTL is the leaders' lease in the cluster tests (seconds).
const clusterLeaseTTL = 3

// replica is one pooler process of the cluster.
type replica struct {
	name, cfg, base, logPath string
	cmd                      *exec.Cmd
	exited                   <-chan struct{}
	log                      *logBuf
}

func (r *replica) alive() bool {
	if r.exited == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

// cluster is the whole set-up of a cluster test.
type cluster struct {
	t        testing.TB
	etcd     *etcdtest.Cluster
	fake     bool   // the fake provider instead of the simulator (benchmarks)
	prefix   string // the etcd prefix (or, with db set, none)
	db       string // a bbolt file instead of etcd (benchmarks)
	dir      string
	simAddr  string
	sim      *exec.Cmd
	replicas []*replica
}

// startChild starts this test binary as a vmpooler command. The returned
// channel is closed once the process has exited and its output is read;
// the test's cleanup kills it if it still runs.
func startChild(t testing.TB, logs io.Writer, args ...string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "VMPOOLER_TEST_CHILD=serve")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() // the one Wait
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return cmd, done
}

// startCluster starts etcd, the simulator and n replicas with pool
// "debian" of size, and waits until one leads and the pool is full.
func startCluster(t *testing.T, n, size int) *cluster {
	t.Helper()
	if os.Getenv(envCluster) != "1" {
		t.Skip("a cluster test (3 poolers, 3 etcd members, a simulator; minutes): run with " + envCluster + "=1 go test -run Cluster .")
	}
	c := &cluster{t: t, etcd: etcdtest.StartCluster(t, 3), dir: t.TempDir(), simAddr: nettest.ClosedAddr(t), prefix: "cluster"}
	simCfg := filepath.Join(c.dir, "sim.toml")
	writeConfig(t, simCfg, c.config("sim", "127.0.0.1:0", size))
	simLog := &logBuf{}
	c.sim, _ = startChild(t, simLog, "simulator", "-listen", c.simAddr, "-config", simCfg,
		"-username", "u", "-password", "p", "-boot-delay", "100ms")
	waitFor(t, "simulator listening", func() (bool, any) {
		resp, err := http.Get("https://" + c.simAddr + "/about")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil || !strings.Contains(err.Error(), "refused"), err
	})
	for i := range n {
		c.replicas = append(c.replicas, c.newReplica(fmt.Sprintf("r%d", i+1), size))
	}
	for _, r := range c.replicas {
		c.start(r)
	}
	c.waitLeader(nil)
	waitFor(t, "pool full", func() (bool, any) {
		st := c.status(c.replicas[0])
		return st.Pools["debian"].Ready == size, st.Pools["debian"]
	})
	return c
}

// config is the configuration of replica name (or the simulator).
func (c *cluster) config(name, listen string, size int) string {
	database := c.db
	if database == "" {
		database = fmt.Sprintf("etcd://%s/%s", strings.Join(c.etcd.Endpoints(), ","), c.prefix)
	}
	provider := fmt.Sprintf(`
[providers.vsphere]
server = %q
username = "u"
password = "p"
insecure = true
datacenter = "DC0"
`, c.simAddr)
	if c.fake {
		provider = "\n[providers.fake]\n"
	}
	text := fmt.Sprintf(`
[config]
listen = %q
database = %q
check_loop_delay = 1
task_limit = 20
log_level = "info"
vm_lifetime = 24

[[pools]]
name = "debian"
template = "templates/debian"
folder = "vmpooler/debian"
datastore = "LocalDS_0"
clone_target = "DC0_C0"
size = %d
ready_check = "tools"
`, listen, database, size) + provider
	if c.db == "" {
		text += fmt.Sprintf("\n[etcd]\nreplica = %q\nlease_ttl = %d\nrequest_timeout = 2\ndial_timeout = 2\n", name, c.leaseTTL())
	}
	return text
}

// leaseTTL is the replicas' lease in seconds: short in the tests, the
// default in the benchmarks (failover is measured as it will be).
func (c *cluster) leaseTTL() int {
	if c.fake {
		return 5
	}
	return clusterLeaseTTL
}

func (c *cluster) newReplica(name string, size int) *replica {
	addr := nettest.ClosedAddr(c.t)
	r := &replica{name: name, cfg: filepath.Join(c.dir, name+".toml"), base: "http://" + addr,
		logPath: filepath.Join(c.dir, name+".log")}
	writeConfig(c.t, r.cfg, c.config(name, addr, size))
	return r
}

// start starts (or restarts) a replica's process and waits for its API.
func (c *cluster) start(r *replica) {
	c.t.Helper()
	r.log = &logBuf{}
	r.cmd, r.exited = startChild(c.t, r.log, "-config", r.cfg)
	waitFor(c.t, r.name+" listening", func() (bool, any) {
		if !r.alive() {
			return false, fmt.Sprintf("exited (%v): %s", r.cmd.ProcessState, r.log)
		}
		resp, err := quick.Get(r.base + "/api/v1/status")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.StatusCode
	})
}

// clusterStatus is what the cluster tests read of /status.
type clusterStatus struct {
	Pools map[string]struct {
		Ready, Running, Pending int
	} `json:"pools"`
	Replica struct {
		Name, Leader string
		Leading      bool
	} `json:"replica"`
}

// quick is for requests to a replica that may be stopped (SIGSTOP): its
// kernel accepts the connection, nobody answers.
var quick = &http.Client{Timeout: 3 * time.Second}

func (c *cluster) status(r *replica) clusterStatus {
	var st clusterStatus
	resp, err := quick.Get(r.base + "/api/v1/status")
	if err != nil {
		return st
	}
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(&st)
	return st
}

// leader returns the replica that says it leads (nil if none does).
func (c *cluster) leader() *replica {
	for _, r := range c.replicas {
		if r.alive() && c.status(r).Replica.Leading {
			return r
		}
	}
	return nil
}

// waitLeader waits until a replica other than not leads, and returns it.
func (c *cluster) waitLeader(not *replica) *replica {
	c.t.Helper()
	var l *replica
	waitFor(c.t, "a leader", func() (bool, any) {
		l = c.leader()
		return l != nil && l != not, l
	})
	return l
}

// live returns the replicas whose process runs.
func (c *cluster) live() []*replica {
	var out []*replica
	for _, r := range c.replicas {
		if r.alive() {
			out = append(out, r)
		}
	}
	return out
}

// waiting is for checkouts that wait up to 60 s.
var waiting = &http.Client{Timeout: 75 * time.Second}

// checkoutWait asks for one VM of debian, waiting up to 60 s.
func checkoutWait(base string) (int, string) {
	resp, err := waiting.Post(base+"/api/v1/vm/debian?wait=60", "application/json", nil)
	if err != nil {
		return 0, ""
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 {
		return resp.StatusCode, ""
	}
	host, _ := out["debian"].(map[string]any)["hostname"].(string)
	return resp.StatusCode, host
}

// settled waits until the pool is full and nothing is pending on every
// live replica's view, then checks that vCenter's inventory and the
// store's live VMs are the same set, and that no VM was destroyed twice
// (the replicas' logs).
func (c *cluster) settled(size int) {
	c.t.Helper()
	t := c.t
	waitFor(c.t, "pool full, nothing pending, every replica agreeing", func() (bool, any) {
		var seen []any
		ok := true
		for _, r := range c.live() {
			p := c.status(r).Pools["debian"]
			seen = append(seen, p)
			ok = ok && p.Ready == size && p.Pending == 0
		}
		return ok, seen
	})
	r := c.live()[0]
	var inv, live, errb bytes.Buffer
	if err := run(t.Context(), []string{"inventory", "-config", r.cfg}, &inv, &errb); err != nil {
		c.t.Fatalf("inventory: %v\n%s", err, errb.String())
	}
	if err := run(t.Context(), []string{"check", "-config", r.cfg, "-list-vms"}, &live, &errb); err != nil {
		c.t.Fatalf("check: %v\n%s", err, errb.String())
	}
	a, b := strings.Fields(inv.String()), strings.Fields(live.String())
	slices.Sort(a)
	slices.Sort(b)
	if !slices.Equal(a, b) {
		c.t.Errorf("vCenter holds %d VMs, the store %d live ones: only in vCenter %v, only in the store %v",
			len(a), len(b), minusList(a, b), minusList(b, a))
	}
	destroyed := map[string]int{}
	for _, r := range c.replicas {
		for _, line := range strings.Split(r.log.String(), "\n") {
			if strings.Contains(line, `msg="vm destroyed"`) {
				if _, rest, ok := strings.Cut(line, "hostname="); ok {
					destroyed[strings.Fields(rest)[0]]++
				}
			}
		}
	}
	for h, n := range destroyed {
		if n > 1 {
			c.t.Errorf("%s destroyed %d times", h, n)
		}
	}
}

func minusList(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	if len(out) > 10 {
		out = append(out[:10], fmt.Sprintf("and %d more", len(out)-10))
	}
	return out
}

// load runs clients that check VMs out (waiting for them) over every live
// replica in turn until stop is closed or total VMs were handed out, and
// returns every hostname handed out and the failed requests by status.
func (c *cluster) load(clients, total int, stop <-chan struct{}) (hosts []string, failed map[int]int) {
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		got  atomic.Int64
		next atomic.Int64
	)
	failed = map[int]int{}
	runClients(&wg, clients, stop, func() bool {
		if total > 0 && got.Load() >= int64(total) {
			return false
		}
		live := c.live()
		if len(live) == 0 {
			return false
		}
		r := live[int(next.Add(1))%len(live)]
		code, host := checkoutWait(r.base)
		mu.Lock()
		if code == 200 {
			got.Add(1)
			hosts = append(hosts, host)
		} else {
			failed[code]++
		}
		mu.Unlock()
		if code != 200 {
			time.Sleep(20 * time.Millisecond)
		}
		return true
	})
	wg.Wait()
	return hosts, failed
}

// runClients starts n goroutines in wg that each call step until stop is
// closed or step returns false: the clients of a load test.
func runClients(wg *sync.WaitGroup, n int, stop <-chan struct{}, step func() bool) {
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !step() {
					return
				}
			}
		})
	}
}

// unique fails the test for a hostname handed out twice.
func unique(t *testing.T, hosts []string) {
	t.Helper()
	seen := map[string]int{}
	for _, h := range hosts {
		if seen[h]++; seen[h] == 2 {
			t.Errorf("%s handed out twice", h)
		}
	}
}

func TestClusterReplicas(t *testing.T) {
	const size = 100
	c := startCluster(t, 3, size)

	t.Run("1000CheckoutsOver3Replicas", func(t *testing.T) {
		start := time.Now()
		hosts, failed := c.load(64, 1000, nil)
		t.Logf("1,000 checkouts by 64 clients over 3 replicas in %v (failed requests by status: %v)", time.Since(start).Round(time.Millisecond), failed)
		if len(hosts) < 1000 {
			t.Fatalf("handed out %d VMs, want 1,000", len(hosts))
		}
		unique(t, hosts)
		waitFor(t, "every replica counts the same running VMs", func() (bool, any) {
			var seen []int
			for _, r := range c.replicas {
				seen = append(seen, c.status(r).Pools["debian"].Running)
			}
			return slices.Min(seen) == slices.Max(seen) && seen[0] == len(hosts), seen
		})
	})

	t.Run("LeaderKilledUnderLoad", func(t *testing.T) {
		old := c.leader()
		if old == nil {
			t.Fatal("no leader")
		}
		stop := make(chan struct{})
		var hosts []string
		done := make(chan struct{})
		go func() { hosts, _ = c.load(16, 0, stop); close(done) }()
		time.Sleep(time.Second)
		killed := time.Now()
		old.cmd.Process.Signal(syscall.SIGKILL)
		for old.alive() {
			time.Sleep(10 * time.Millisecond)
		}
		next := c.waitLeader(old)
		took := time.Since(killed)
		t.Logf("leader %s killed (SIGKILL) under load; %s led %v later (lease %d s)", old.name, next.name, took.Round(time.Millisecond), clusterLeaseTTL)
		if took > (clusterLeaseTTL+10)*time.Second {
			t.Errorf("failover took %v", took)
		}
		time.Sleep(2 * time.Second)
		close(stop)
		<-done
		unique(t, hosts)
		c.start(old) // back as a follower
		c.settled(size)
		t.Logf("%s's log from the takeover:\n%s", next.name, firstLines(next.log.String(), "leading:", 10))
	})

	t.Run("StoppedLeaderDoesNotActAfterResuming", func(t *testing.T) {
		old := c.leader()
		old.cmd.Process.Signal(syscall.SIGSTOP)
		next := c.waitLeader(old)
		time.Sleep(clusterLeaseTTL * time.Second) // well past the lease
		mark := len(old.log.String())
		old.cmd.Process.Signal(syscall.SIGCONT)
		waitFor(t, old.name+" says it no longer leads", func() (bool, any) {
			return strings.Contains(old.log.String()[mark:], "no longer leading"), nil
		})
		time.Sleep(time.Second)
		for _, line := range strings.Split(old.log.String()[mark:], "\n") {
			// What the manager logs after a store write or a vSphere call
			// succeeded: none may come from the stale leader.
			for _, act := range []string{`msg="vm pending"`, `msg="vm ready"`, `msg="vm destroyed"`, `msg="vm failed"`, `msg="vm adopted"`} {
				if strings.Contains(line, act) {
					t.Errorf("%s acted after resuming: %s", old.name, line)
				}
			}
		}
		t.Logf("%s after SIGCONT:\n%s", old.name, grepLines(old.log.String()[mark:], "lead"))
		if st := c.status(old); st.Replica.Leading || st.Replica.Leader != next.name {
			t.Errorf("%s after SIGCONT: %+v, want following %s", old.name, st.Replica, next.name)
		}
		if l := c.leader(); l != next {
			t.Errorf("leader %v after the stopped one resumed, want %s", l, next.name)
		}
		c.settled(size)
	})

	t.Run("EtcdMembersLost", func(t *testing.T) {
		first := c.etcd.Leader()
		c.etcd.Stop(first)
		for _, r := range c.live() {
			waitFor(t, r.name+" serves with one etcd member down", func() (bool, any) {
				code, _ := checkout(t, r.base, "debian")
				return code == 200, code
			})
		}
		second := (first + 1) % 3
		marks := map[*replica]int{}
		for _, r := range c.replicas {
			marks[r] = len(r.log.String())
		}
		c.etcd.Stop(second)
		for _, r := range c.live() {
			start := time.Now()
			code, body := do(t, "POST", r.base+"/api/v1/vm/debian", "", "", "")
			if code != http.StatusServiceUnavailable || body["ok"] != false {
				t.Errorf("%s without quorum: %d %v, want 503 JSON", r.name, code, body)
			}
			if took := time.Since(start); took > 10*time.Second {
				t.Errorf("%s without quorum answered in %v", r.name, took)
			}
		}
		// The leader's term goes stale within 2/3 of the lease; /status
		// may not answer without etcd, so the logs say it.
		waitFor(t, "the leader stops its manager without quorum", func() (bool, any) {
			for _, r := range c.live() {
				if strings.Contains(r.log.String()[marks[r]:], "no longer leading") {
					return true, r.name
				}
			}
			return false, nil
		})
		time.Sleep(clusterLeaseTTL * time.Second)
		for _, r := range c.live() {
			if strings.Contains(r.log.String()[marks[r]:], "leading: this replica runs the pool manager") {
				t.Errorf("%s led without an etcd quorum", r.name)
			}
		}
		restored := time.Now()
		c.etcd.Restart(first, second)
		c.waitLeader(nil)
		t.Logf("a leader again %v after the two members came back", time.Since(restored).Round(time.Millisecond))
		c.settled(size)
	})
}

// fmtReplicas is for messages.
func (r *replica) String() string { return r.name }

// firstLines returns n lines of text from the first that contains sub.
func firstLines(text, sub string, n int) string {
	i := strings.Index(text, sub)
	if i < 0 {
		return ""
	}
	i = strings.LastIndex(text[:i], "\n") + 1
	lines := strings.SplitN(text[i:], "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}
