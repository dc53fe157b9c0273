package vsphere

import (
	"context"
	"errors"
	"net"
	"syscall"
	"time"

	"github.com/vmware/govmomi/vim25/soap"

	"github.com/vmpooler/vmpooler/pool"
)

// Backoff of Start's connection attempts.
const (
	connectBackoffMin = time.Second
	connectBackoffMax = time.Minute
)

// Start validates the configuration (an error is final), starts the
// simulator when configured, and then connects in the background: the
// API can serve at once while vCenter is down. Until a connection
// succeeds every call fails with ErrTransient naming the last reason
// (Connection reports it too); attempts back off from 1 s to 1 min, and
// after a refused login they wait login_holdoff. Close ends the loop.
func (p *Provider) Start(ctx context.Context) error {
	u, err := p.serverURL(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	p.mu.Lock()
	p.connErr, p.connSince = errors.New("connecting"), time.Now()
	p.stopConnect = func() { cancel(); <-done }
	p.mu.Unlock()
	first := make(chan struct{}) // closed after the first attempt
	go func() {
		defer close(done)
		delay := connectBackoffMin
		for attempt := 0; ; attempt++ {
			actx, acancel := context.WithTimeout(ctx, 2*p.cfg.callTimeout())
			err := p.attach(actx, u)
			acancel()
			if attempt == 0 {
				close(first)
			}
			if ctx.Err() != nil {
				return
			}
			if err == nil {
				p.setConnected(nil)
				return
			}
			wait := delay
			if errors.Is(err, pool.ErrAuth) {
				wait = max(wait, p.cfg.loginHoldoff())
			}
			if p.setConnected(err) {
				p.logger.Error("cannot connect to vCenter; the API serves meanwhile, pools fill once it is reachable",
					"reason", connectReason(err), "err", err, "retry_in", wait)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			delay = min(2*delay, connectBackoffMax)
		}
	}()
	// A reachable vCenter answers within moments: wait that long for the
	// first attempt, so that the first pass usually finds a session.
	select {
	case <-first:
	case <-time.After(firstConnectWait):
	}
	return nil
}

// firstConnectWait is how long Start waits for its first attempt before
// it returns anyway (the API must not wait for a vCenter that is down).
const firstConnectWait = 2 * time.Second

// setConnected records the outcome of an attempt; it reports whether the
// reason changed (so the log says each reason once).
func (p *Provider) setConnected(err error) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	changed := (err == nil) != (p.connErr == nil) || (err != nil && err.Error() != p.connErr.Error())
	if changed {
		p.connSince = time.Now()
	}
	p.connErr = err
	return changed
}

// Connection reports whether the provider has a vCenter session and, when
// not, why (DNS, refused, TLS, login, ...), since when.
func (p *Provider) Connection() (connected bool, reason string, since time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client != nil {
		return true, "", p.connSince
	}
	if p.connErr == nil {
		return false, "not open", p.connSince
	}
	return false, connectReason(p.connErr) + ": " + p.connErr.Error(), p.connSince
}

// connectReason names the kind of a connection failure for /status.
func connectReason(err error) string {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return "DNS"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded) || isTimeout(err):
		return "timeout"
	case soap.IsCertificateUntrusted(err):
		return "TLS"
	case errors.Is(err, pool.ErrAuth):
		return "login"
	case errors.Is(err, pool.ErrPermission):
		return "permission"
	case errors.Is(err, pool.ErrNotFound):
		return "configuration"
	}
	return "error"
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
