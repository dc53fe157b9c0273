package vsphere

import (
	"context"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmpooler/vmpooler/pool"
)

// urlHandler is a slog.Handler that passes on the "url" of Serve's
// start-up record.
type urlHandler struct{ ch chan string }

func (h urlHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h urlHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h urlHandler) WithGroup(string) slog.Handler            { return h }
func (h urlHandler) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "url" {
			select {
			case h.ch <- a.Value.String():
			default:
			}
		}
		return true
	})
	return nil
}

// serveForTest runs Serve on a random port until the test ends and
// returns the address to put in Config.Server.
func serveForTest(t *testing.T, pools []pool.PoolConfig) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, "127.0.0.1:0", "", "", pools, 50*time.Millisecond, slog.New(urlHandler{ch}))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case s := <-ch:
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return u.Host
	case err := <-done:
		t.Fatalf("Serve ended early: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("Serve did not start within a minute")
	}
	return ""
}

// TestServe drives the stand-alone simulator like a real vCenter: the
// default credentials, insecure, the address it logged.
func TestServe(t *testing.T) {
	pools := testPools()
	addr := serveForTest(t, pools)
	p := New(Config{Server: addr, Username: "user", Password: "pass", Insecure: true, ReadyCheck: "tools"},
		pools, simtest.Logger())
	if err := p.Open(ctxT(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer p.Close()
	pc := pools[1]
	mustClone(t, p, pc, "e2e-1")
	mustClone(t, p, pc, "e2e-2")
	waitReady(t, p, pc, []string{"e2e-1", "e2e-2"}, "")
}
