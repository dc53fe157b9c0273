// Package loadgen drives a running vmpooler over HTTP with concurrent
// keep-alive clients and measures what it answers: latency histograms,
// statuses, and (in checkout mode) a record of every hostname handed out and
// returned, so a checker can prove no VM was handed to two clients.
// It talks only to loopback addresses. bench/load and bench/crash use it.
package loadgen

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// Modes.
const (
	ModeCheckout = "checkout" // POST /vm/<pool> → GET /vm/<host> → DELETE /vm/<host>
	ModeStatus   = "status"   // GET /status
	ModeVM       = "vm"       // GET /vm
)

// Limits that keep a run bounded.
const (
	MaxClients  = 1024
	MaxDuration = 24 * time.Hour
)

// Config describes one run. Both Duration and Max bound it.
type Config struct {
	URL       string        // base URL, e.g. http://127.0.0.1:4567 (loopback only)
	Clients   int           // concurrent clients
	Duration  time.Duration // stop starting iterations after this long
	Max       int64         // stop after this many iterations in total
	Mode      string        // ModeCheckout, ModeStatus or ModeVM
	Pools     []string      // checkout mode: client i uses Pools[i%len(Pools)]
	Token     string        // sent as X-AUTH-TOKEN when not empty
	Recorder  *Recorder     // checkout mode: receives checkout/return events (may be nil)
	Timeout   time.Duration // per request, default 10s
	EmptyWait time.Duration // pause after a 503 (pool empty), default 20ms; negative = none
	ErrorWait time.Duration // pause after a failed request, default 20ms; negative = none
}

// withDefaults fills zero values.
func (c Config) withDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	if c.EmptyWait == 0 {
		c.EmptyWait = 20 * time.Millisecond
	}
	if c.ErrorWait == 0 {
		c.ErrorWait = 20 * time.Millisecond
	}
	return c
}

// Validate reports the first problem with c.
func (c Config) Validate() error {
	if err := CheckLoopback(c.URL); err != nil {
		return err
	}
	switch {
	case c.Clients < 1 || c.Clients > MaxClients:
		return fmt.Errorf("clients must be between 1 and %d, got %d", MaxClients, c.Clients)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return fmt.Errorf("duration must be above 0 and at most %s, got %s", MaxDuration, c.Duration)
	case c.Max < 1:
		return fmt.Errorf("max must be at least 1, got %d", c.Max)
	case c.Timeout < 0:
		return errors.New("timeout must not be negative")
	}
	switch c.Mode {
	case ModeStatus, ModeVM:
	case ModeCheckout:
		if len(c.Pools) == 0 {
			return errors.New("checkout mode needs at least one pool")
		}
		for _, p := range c.Pools {
			if p == "" || strings.ContainsAny(p, "/?#") {
				return fmt.Errorf("bad pool name %q", p)
			}
		}
	default:
		return fmt.Errorf("mode must be checkout, status or vm, got %q", c.Mode)
	}
	return nil
}

// CheckLoopback accepts only http(s) URLs whose host is localhost or a
// loopback address (127.0.0.0/8, ::1): this tool never sends load elsewhere.
func CheckLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: scheme must be http or https", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("url %q: no user info, query or fragment allowed", raw)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("url %q: no host", raw)
	}
	if !isLoopbackHost(host) {
		return fmt.Errorf("url %q: host %q is not loopback (127.0.0.0/8, ::1, localhost); this tool only sends load to this machine", raw, host)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// loopbackDialer refuses to connect anywhere but a loopback IP, whatever a
// name resolved to (localhost in /etc/hosts could point elsewhere).
func loopbackDialer() *net.Dialer {
	return &net.Dialer{
		Timeout: 5 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("refusing to connect to non-loopback address %s", address)
			}
			return nil
		},
	}
}

// apiBase returns the /api/v1 base for a configured URL.
func apiBase(raw string) string {
	b := strings.TrimRight(raw, "/")
	if strings.HasSuffix(b, "/api/v1") {
		return b
	}
	return b + "/api/v1"
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
