package vsphere

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/nettest"
	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmpooler/vmpooler/pool"
)

// Start while vCenter is down: calls fail with ErrTransient and
// Connection says why; once a vCenter listens there, the provider
// connects by itself.
func TestStartWhileVCenterDown(t *testing.T) {
	addr := nettest.ClosedAddr(t) // connection refused
	pools := testPools()
	p := New(Config{Server: addr, Username: "user", Password: "pass", Insecure: true, ReadyCheck: "tools", Datacenter: "dc1"},
		pools, simtest.Logger())
	if err := p.Start(ctxT(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer p.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, reason, _ := p.Connection()
		if ok {
			t.Fatal("connected to a closed port")
		}
		if strings.Contains(reason, "connection refused") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reason = %q, want connection refused", reason)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := p.List(ctxT(t), "dc1", pools[0].Folder); !errors.Is(err, pool.ErrTransient) || !strings.Contains(err.Error(), "not connected") {
		t.Errorf("List while down: %v, want ErrTransient saying not connected", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, addr, "", "", pools, 50*time.Millisecond, slog.New(slog.DiscardHandler)) }()
	for {
		if ok, _, _ := p.Connection(); ok {
			break
		}
		if time.Now().After(deadline) {
			_, reason, _ := p.Connection()
			t.Fatalf("not connected 30 s after the simulator started: %s", reason)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := p.List(ctxT(t), "dc1", pools[0].Folder); err != nil {
		t.Errorf("List once connected: %v", err)
	}
	p.Close()
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}
