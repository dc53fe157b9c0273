package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/nettest"
	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
)

// benchPool is the pool BenchmarkReplicas checks out.
const benchPool = 3000

// startBenchPoolers starts n pooler processes on the fake provider (instant
// clones: the API and the store are measured) with pool "debian" of size,
// on etcd (the cluster's, under prefix) or, with etcd nil, on a bbolt
// file; it waits until the pool is full.
func startBenchPoolers(b *testing.B, e *etcdtest.Cluster, prefix string, n, size int) *cluster {
	b.Helper()
	c := &cluster{t: b, etcd: e, dir: b.TempDir(), fake: true, prefix: prefix}
	if e == nil {
		c.db = filepath.Join(c.dir, "vmpooler.db")
	}
	for i := range n {
		r := c.newReplica(fmt.Sprintf("r%d", i+1), size)
		c.replicas = append(c.replicas, r)
		c.start(r)
	}
	waitForLong(b, "pool full", 5*time.Minute, func() (bool, any) {
		st := c.status(c.replicas[0])
		return st.Pools["debian"].Ready == size, st.Pools["debian"]
	})
	return c
}

// checkouts runs 32 clients, each checking VMs out of a replica (client i
// of replica i mod n) until the pool is empty, and reports checkouts/s
// and the checkout's p50 and p99 latency.
func checkouts(b *testing.B, c *cluster) {
	const clients = 32
	var (
		mu  sync.Mutex
		lat []time.Duration
		wg  sync.WaitGroup
	)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: 30 * time.Second}
	start := time.Now()
	b.ResetTimer()
	for i := range clients {
		base := c.replicas[i%len(c.replicas)].base
		wg.Go(func() {
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
			for {
				t0 := time.Now()
				resp, err := hc.Post(base+"/api/v1/vm/debian", "application/json", nil)
				if err != nil {
					b.Error(err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusServiceUnavailable {
					return // the pool is empty
				} else if resp.StatusCode != 200 {
					b.Errorf("checkout: %d", resp.StatusCode)
					return
				}
				mine = append(mine, time.Since(t0))
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatal("no checkout answered")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/took.Seconds(), "checkouts/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(lat)), "vms")
}

// BenchmarkReplicas compares, in one run, checkouts from 32 clients
// against the single bbolt appliance and against 1, 2 and 3 replicas on a
// 3-member etcd cluster (embedded in the test process, on this machine's
// disk): a pool of benchPool ready VMs (fake provider) is checked out
// until empty. Run it alone:
//
//	VMPOOLER_CLUSTER=1 go test -run '^$' -bench BenchmarkReplicas -benchtime 1x .
func BenchmarkReplicas(b *testing.B) {
	if os.Getenv(envCluster) != "1" {
		b.Skip("starts pooler processes and an etcd cluster: run with " + envCluster + "=1")
	}
	e := etcdtest.StartCluster(b, 3) // for all the sub-benchmarks: its cleanup is b's
	for _, n := range benchReplicas() {
		name := "bbolt"
		if n > 0 {
			name = fmt.Sprintf("etcd-replicas=%d", n)
		}
		b.Run(name, func(b *testing.B) {
			var c *cluster
			if n == 0 {
				c = startBenchPoolers(b, nil, "", 1, benchPool)
			} else {
				c = startBenchPoolers(b, e, fmt.Sprintf("bench%d", n), n, benchPool)
			}
			checkouts(b, c)
			for _, r := range c.replicas {
				r.cmd.Process.Signal(syscall.SIGTERM)
			}
		})
	}
}

// BenchmarkFailover kills (SIGKILL) the leader of 3 replicas 5 times and
// reports the time until another replica leads: median, min and max. The
// lease is the default (5 s), so the failover is what production sees.
//
//	VMPOOLER_CLUSTER=1 go test -run '^$' -bench BenchmarkFailover -benchtime 1x .
func BenchmarkFailover(b *testing.B) {
	if os.Getenv(envCluster) != "1" {
		b.Skip("starts pooler processes and an etcd cluster: run with " + envCluster + "=1")
	}
	e := etcdtest.StartCluster(b, 3)
	c := startBenchPoolers(b, e, "failover", 3, 5)
	var took []time.Duration
	for range 5 {
		old := c.waitLeader(nil)
		killed := time.Now()
		old.cmd.Process.Signal(syscall.SIGKILL)
		c.waitLeaderPolling(old, 10*time.Millisecond)
		took = append(took, time.Since(killed))
		for old.alive() {
			time.Sleep(10 * time.Millisecond)
		}
		old.base = "http://" + nettest.ClosedAddr(b)
		writeConfig(b, old.cfg, c.config(old.name, old.base[len("http://"):], 5))
		c.start(old)
	}
	slices.Sort(took)
	b.ReportMetric(took[2].Seconds(), "median-s")
	b.ReportMetric(took[0].Seconds(), "min-s")
	b.ReportMetric(took[4].Seconds(), "max-s")
}

// waitLeaderPolling is waitLeader polling every interval (for timing).
func (c *cluster) waitLeaderPolling(not *replica, interval time.Duration) *replica {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, r := range c.replicas {
			if r != not && r.alive() && c.status(r).Replica.Leading {
				return r
			}
		}
		time.Sleep(interval)
	}
	c.t.Fatal("no new leader within 60 s")
	return nil
}

// waitForLong is waitFor with a longer bound.
func waitForLong(t testing.TB, what string, bound time.Duration, cond func() (bool, any)) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		ok, seen := cond()
		if ok {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("%s: gave up after %v; last saw %v", what, bound, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// benchReplicas is which configurations BenchmarkReplicas runs: 0 (bbolt)
// and 1, 2, 3 replicas, or those of VMPOOLER_BENCH_REPLICAS ("2,3").
func benchReplicas() []int {
	v := os.Getenv("VMPOOLER_BENCH_REPLICAS")
	if v == "" {
		return []int{0, 1, 2, 3}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, _ := strconv.Atoi(f)
		out = append(out, n)
	}
	return out
}
