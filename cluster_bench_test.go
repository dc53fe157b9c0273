package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/nettest"
	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
)

// benchDuration is how long each configuration of BenchmarkReplicas runs.
const benchDuration = 8 * time.Second

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
	waitFor(b, "pool full", func() (bool, any) {
		st := c.status(c.replicas[0])
		return st.Pools["debian"].Ready == size, st.Pools["debian"]
	})
	return c
}

// cycles runs 32 clients for d, each checking a VM out of a replica (in
// turn) and returning it, and reports cycles/s and the checkout's p50 and
// p99 latency.
func cycles(b *testing.B, c *cluster, d time.Duration) {
	const clients = 32
	var (
		mu    sync.Mutex
		lat   []time.Duration
		n     atomic.Int64
		empty atomic.Int64
		wg    sync.WaitGroup
	)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	deadline := time.Now().Add(d)
	b.ResetTimer()
	for i := range clients {
		base := c.replicas[i%len(c.replicas)].base
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) {
				t0 := time.Now()
				resp, err := hc.Post(base+"/api/v1/vm/debian", "application/json", nil)
				if err != nil {
					b.Error(err)
					return
				}
				var out map[string]map[string]any
				decodeJSON(resp, &out)
				took := time.Since(t0)
				if resp.StatusCode == http.StatusServiceUnavailable {
					empty.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				} else if resp.StatusCode != 200 {
					b.Errorf("checkout: %d", resp.StatusCode)
					return
				}
				mine = append(mine, took)
				host, _ := out["debian"]["hostname"].(string)
				req, _ := http.NewRequest("DELETE", base+"/api/v1/vm/"+host, nil)
				if resp, err := hc.Do(req); err != nil || resp.StatusCode != 200 {
					b.Errorf("return %s: %v %v", host, err, resp)
					return
				} else {
					resp.Body.Close()
				}
				n.Add(1)
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	b.StopTimer()
	if len(lat) == 0 {
		b.Fatal("no checkout answered")
	}
	slices.Sort(lat)
	b.ReportMetric(float64(n.Load())/d.Seconds(), "cycles/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(empty.Load()), "empty")
}

// BenchmarkReplicas compares, in one run, checkout+return cycles from 32
// clients against the single bbolt appliance and against 1, 2 and 3
// replicas on a 3-member etcd cluster (embedded in the test process, on
// this machine's disk), each for benchDuration. Run it alone:
//
//	VMPOOLER_CLUSTER=1 go test -run '^$' -bench BenchmarkReplicas -benchtime 1x .
func BenchmarkReplicas(b *testing.B) {
	if os.Getenv(envCluster) != "1" {
		b.Skip("starts pooler processes and an etcd cluster: run with " + envCluster + "=1")
	}
	var e *etcdtest.Cluster
	for _, n := range []int{0, 1, 2, 3} {
		name := "bbolt"
		if n > 0 {
			name = fmt.Sprintf("etcd-replicas=%d", n)
		}
		b.Run(name, func(b *testing.B) {
			if n > 0 && e == nil {
				e = etcdtest.StartCluster(b, 3)
			}
			var c *cluster
			if n == 0 {
				c = startBenchPoolers(b, nil, "", 1, 200)
			} else {
				c = startBenchPoolers(b, e, fmt.Sprintf("bench%d", n), n, 200)
			}
			cycles(b, c, benchDuration)
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

// decodeJSON decodes and closes resp's body.
func decodeJSON(resp *http.Response, v any) {
	defer resp.Body.Close()
	json.NewDecoder(resp.Body).Decode(v)
}
