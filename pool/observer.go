package pool

import "time"

// Observer is told what the manager sees, for metrics. Its methods are
// called from the manager's goroutines and must not block.
type Observer interface {
	// CloneFinished reports a clone task that ended after d (err nil on success).
	CloneFinished(pool string, d time.Duration, err error)
	// VMReady reports a VM that passed its first ready check, boot after
	// its clone started.
	VMReady(pool string, boot time.Duration)
	// ProviderError reports a failed provider call: op is the Provider
	// method ("clone", "list", "ready", "destroy", "snapshot", "revert",
	// "add_disk", "annotate").
	ProviderError(op string, err error)
	// VMFailed reports a VM the manager took out of its pool before its
	// time or at the end of it, by cause: "lifetime" (a checked-out VM's
	// lifetime ended), "ready_ttl", "ready_check" (failed, or timed out
	// waiting for it), "hostname_mismatch", "clone_failed",
	// "clone_timeout", "excess" (beyond the pool's size), "stale" (a
	// template or clone_target override), "ondemand" (its request ended
	// or failed) or "vanished" (gone from vSphere).
	VMFailed(pool, cause string)
}

// NopObserver is the default Observer: it ignores everything.
type NopObserver struct{}

// CloneFinished does nothing.
func (NopObserver) CloneFinished(string, time.Duration, error) {}

// VMReady does nothing.
func (NopObserver) VMReady(string, time.Duration) {}

// ProviderError does nothing.
func (NopObserver) ProviderError(string, error) {}

// VMFailed does nothing.
func (NopObserver) VMFailed(string, string) {}
