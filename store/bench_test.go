package store

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// prefill adds n ready VMs to pool "p" in chunks, outside the timer.
func prefill(b *testing.B, s *Store, n int) {
	b.Helper()
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

// BenchmarkCheckoutSerial checks out one VM at a time.
func BenchmarkCheckoutSerial(b *testing.B) {
	s := openBench(b)
	prefill(b, s, b.N)
	req := CheckoutRequest{Pools: []PoolCount{{"p", 1}}}
	b.ResetTimer()
	for range b.N {
		if _, err := s.Checkout(req); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkouts/s")
}

// BenchmarkCheckoutParallel checks out b.N VMs from 32 goroutines.
func BenchmarkCheckoutParallel(b *testing.B) {
	s := openBench(b)
	prefill(b, s, b.N)
	req := CheckoutRequest{Pools: []PoolCount{{"p", 1}}}
	runClients(b, func() error {
		_, err := s.Checkout(req)
		return err
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checkouts/s")
}

// BenchmarkCheckoutReturnParallel runs checkout + return cycles from 32
// goroutines: the store's share of the API's checkout/return cycle.
func BenchmarkCheckoutReturnParallel(b *testing.B) {
	s := openBench(b)
	prefill(b, s, b.N)
	req := CheckoutRequest{Pools: []PoolCount{{"p", 1}}}
	runClients(b, func() error {
		vms, err := s.Checkout(req)
		if err != nil {
			return err
		}
		return s.Return(vms[0].Hostname, "bench", Anyone)
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
}

// runClients runs op b.N times in all from 32 goroutines, timed.
func runClients(b *testing.B, op func() error) {
	const clients = 32
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

// BenchmarkCommitFloor is the cost of the smallest durable bbolt commit
// (one key) with the store's options: the floor under CheckoutSerial on
// this disk, to tell a slow store from a slow disk.
func BenchmarkCommitFloor(b *testing.B) {
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
