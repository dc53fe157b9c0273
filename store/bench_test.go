package store

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// prefill adds n ready VMs to pool "p" in chunks, outside the timer.
func prefill(b *testing.B, s *Store, n int) {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	const chunk = 5000
	for i := 0; i < n; i += chunk {
		fillReady(b, s, "p", "c"+itoa(i)+"-", min(chunk, n-i))
	}
}

// openBench opens a durable store (fsync on, real clock) for a benchmark.
func openBench(b *testing.B) *Store {
	b.Helper()
	return MustOpenStoreAt(b, filepath.Join(b.TempDir(), "bench.db"), nil)
}

// checkoutBench fills s with b.N ready VMs in pool "p" and returns the
// request for one of them that the checkout benchmarks repeat.
func checkoutBench(b *testing.B, s *Store) CheckoutRequest {
	b.Helper()
	prefill(b, s, b.N)
	return CheckoutRequest{Pools: []PoolCount{{"p", 1}}}
}

// reportRate reports the benchmark's operations per second, named unit.
func reportRate(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// BenchmarkCheckoutSerial checks out one VM at a time.
func BenchmarkCheckoutSerial(b *testing.B) {
	s := openBench(b)
	req := checkoutBench(b, s)
	b.ResetTimer()
	for range b.N {
		if _, err := s.Checkout(req); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b, "checkouts/s")
}

// BenchmarkCheckoutParallel checks out b.N VMs from 32 goroutines.
func BenchmarkCheckoutParallel(b *testing.B) {
	runClients(b, "checkouts/s", func(s *Store, req CheckoutRequest) error {
		_, err := s.Checkout(req)
		return err
	})
}

// BenchmarkCheckoutReturnParallel runs checkout + return cycles from 32
// goroutines: the store's share of the API's checkout/return cycle.
func BenchmarkCheckoutReturnParallel(b *testing.B) {
	runClients(b, "cycles/s", func(s *Store, req CheckoutRequest) error {
		vms, err := s.Checkout(req)
		if err != nil {
			return err
		}
		return s.Return(vms[0].Hostname, "bench", Anyone)
	})
}

// runClients runs op b.N times in all from 32 goroutines, timed, on a
// durable store filled as by checkoutBench, and reports the rate as unit.
func runClients(b *testing.B, unit string, op func(s *Store, req CheckoutRequest) error) {
	s := openBench(b)
	req := checkoutBench(b, s)
	runN(b, 32, func() error { return op(s, req) })
	reportRate(b, unit)
}

// BenchmarkCommitFloor is the cost of the smallest durable bbolt commit
// (one key) with the store's options: the floor under CheckoutSerial on
// this disk, to tell a slow store from a slow disk.
func BenchmarkCommitFloor(b *testing.B) {
	needFile(b)
	s := openBench(b)
	b.ResetTimer()
	for i := range b.N {
		err := s.db.Update(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put([]byte("floor"), []byte{byte(i)})
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEngines checks out one VM at a time, serially and from 32
// goroutines, on the bbolt file and on the embedded etcd server of this
// test binary (one member, fsync on, on the same disk), in one run: the
// throughput and the median and p99 latency of a checkout. On etcd the
// store runs as main sets it up: checkout window 4, batches within
// etcd's default --max-txn-ops.
func BenchmarkEngines(b *testing.B) {
	for _, eng := range []string{"bbolt", "etcd"} {
		for _, clients := range []int{1, 32} {
			b.Run(fmt.Sprintf("%s/clients=%d", eng, clients), func(b *testing.B) {
				s := openEngineBench(b, eng)
				req := checkoutBench(b, s)
				var mu sync.Mutex
				lat := make([]time.Duration, 0, b.N)
				runN(b, clients, func() error {
					t0 := time.Now()
					_, err := s.Checkout(req)
					d := time.Since(t0)
					mu.Lock()
					lat = append(lat, d)
					mu.Unlock()
					return err
				})
				slices.Sort(lat)
				reportRate(b, "checkouts/s")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			})
		}
	}
}

// openEngineBench opens a durable store on engine ("bbolt" or "etcd").
func openEngineBench(b *testing.B, engine string) *Store {
	b.Helper()
	path := filepath.Join(b.TempDir(), "bench.db")
	if engine == "bbolt" {
		return MustOpenStoreAt(b, path, nil)
	}
	s := New(path)
	s.Engine, s.Batch, s.CheckoutWindow = etcdEngine(b, path), etcdBatch, 4
	if err := s.Open(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// runN runs op b.N times in all from clients goroutines, timed.
func runN(b *testing.B, clients int, op func() error) {
	var (
		left = int64(b.N)
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= left {
				if err := op(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
}

// BenchmarkCheckoutQuota checks out one VM at a time for a user with a
// quota while other users hold running VMs: the quota check's work as
// the store grows (it should not grow with the VMs of other users).
func BenchmarkCheckoutQuota(b *testing.B) {
	for _, eng := range []string{"bbolt", "etcd"} {
		for _, held := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/running=%d", eng, held), func(b *testing.B) {
				s := openEngineBench(b, eng)
				prefill(b, s, b.N+held)
				for i := 0; i < held; i += 20 {
					if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", min(20, held-i)}}, User: "u" + itoa(i%7)}); err != nil {
						b.Fatal(err)
					}
				}
				req := CheckoutRequest{Pools: []PoolCount{{"p", 1}}, User: "alice", Quota: &Quota{Total: b.N + 1}}
				b.ResetTimer()
				for range b.N {
					if _, err := s.Checkout(req); err != nil {
						b.Fatal(err)
					}
				}
				reportRate(b, "checkouts/s")
			})
		}
	}
}
