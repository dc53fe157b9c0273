package store

import (
	"sync"
	"sync/atomic"
	"testing"
)

// BenchmarkCheckoutReturnParallel runs checkout + return cycles from 32
// goroutines: the store's share of the API's checkout/return cycle.
func BenchmarkCheckoutReturnParallel(b *testing.B) {
	const clients = 32
	s := openBench(b)
	prefill(b, s, b.N)
	req := CheckoutRequest{Pools: []PoolCount{{"p", 1}}}
	var (
		left = int64(b.N)
		next atomic.Int64
		wg   sync.WaitGroup
	)
	b.ResetTimer()
	for range clients {
		wg.Go(func() {
			for next.Add(1) <= left {
				vms, err := s.Checkout(req)
				if err != nil {
					b.Error(err)
					return
				}
				if err := s.Return(vms[0].Hostname, "bench"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
}
