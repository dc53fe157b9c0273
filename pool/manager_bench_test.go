package pool

import (
	"fmt"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/store"
)

// BenchmarkReconcile measures one steady-state pass over 10,000 ready VMs
// in 20 pools: one List per pool, one store read per pool, and (the clock
// moving a vm_checktime per pass) a ready check of every VM. Nothing to
// clone or destroy.
func BenchmarkReconcile(b *testing.B) {
	const pools, perPool = 20, 500
	var cfgs []PoolConfig
	for i := range pools {
		cfgs = append(cfgs, mgrTestPool(fmt.Sprintf("pool%02d", i), perPool))
	}
	e := mustManager(b, func(c *Config) {
		c.TaskLimit = pools * perPool
		c.ReadyTTL = 1 << 30
	}, cfgs...)
	e.m.PurgeInterval = 1 << 62
	e.pass(b) // clone all
	e.pass(b) // all ready
	for _, pc := range cfgs {
		if n := e.count(b, pc.Name, store.StateReady); n != perPool {
			b.Fatalf("%s: ready = %d, want %d", pc.Name, n, perPool)
		}
	}
	clones := e.fp.Calls("Clone")
	b.ReportAllocs()
	for b.Loop() {
		e.clk.Advance(time.Minute)
		if err := e.m.Reconcile(e.ctx); err != nil {
			b.Fatal(err)
		}
	}
	if got := e.fp.Calls("Clone"); got != clones {
		b.Fatalf("steady state cloned %d VMs", got-clones)
	}
}
