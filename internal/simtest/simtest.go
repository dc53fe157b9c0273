// Package simtest opens the vSphere provider on its in-process simulator
// for the tests of every package that runs one (vsphere, pool, httpapi).
//
// It imports nothing of the pooler's, so that the vsphere package's own
// internal tests can use it as well as the tests of the packages above.
package simtest

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"
)

// Logger is the logger for a test's provider and manager: silent, or
// debug lines on stderr when VMPOOLER_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("VMPOOLER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Provider is what Open needs of a provider (vsphere.Provider).
type Provider interface {
	Open(ctx context.Context) error
	Close() error
}

// Open opens p, a provider configured for the simulator, within a minute,
// and closes it when the test ends.
func Open[P Provider](tb testing.TB, p P) P {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Open(ctx); err != nil {
		tb.Fatalf("vsphere Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Errorf("vsphere Close: %v", err)
		}
	})
	return p
}
