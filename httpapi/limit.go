package httpapi

import (
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// Failed HTTP Basic logins: after MaxLoginFailures failures within
// LoginWindow for one user name, or from one client address, further
// logins for that user (from anywhere) or from that address (as anyone)
// are answered 429 with Retry-After until the oldest failure leaves the
// window. The password is not checked meanwhile, so guessing stalls and
// the directory is not hammered; other users and addresses are untouched.
const (
	MaxLoginFailures = 10
	LoginWindow      = time.Minute
)

// maxLimiterKeys bounds each limiter's memory; past it, stale keys are
// swept, and if that frees nothing new keys are not tracked.
const maxLimiterKeys = 100_000

// failureLimiter remembers recent failures per key.
type failureLimiter struct {
	mu    sync.Mutex
	m     map[string][]time.Time // key → failure times within the window, oldest first
	swept time.Time
}

func newFailureLimiter() *failureLimiter {
	return &failureLimiter{m: make(map[string][]time.Time)}
}

// recent drops failures older than the window and returns those left.
func recent(ts []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(ts) && now.Sub(ts[i]) >= LoginWindow {
		i++
	}
	return ts[i:]
}

// blocked reports how long key must wait (0: not blocked).
func (l *failureLimiter) blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	ts := recent(l.m[key], now)
	if len(ts) < MaxLoginFailures {
		return 0
	}
	return ts[len(ts)-MaxLoginFailures].Add(LoginWindow).Sub(now)
}

// fail records a failure of key and reports whether key is now blocked.
func (l *failureLimiter) fail(key string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.m) >= maxLimiterKeys {
		l.sweep(now)
		if len(l.m) >= maxLimiterKeys {
			return false
		}
	}
	ts := append(recent(l.m[key], now), now)
	if len(ts) > MaxLoginFailures {
		ts = ts[len(ts)-MaxLoginFailures:]
	}
	l.m[key] = ts
	return len(ts) >= MaxLoginFailures
}

// sweep forgets keys with no failure in the window (at most once a window).
func (l *failureLimiter) sweep(now time.Time) {
	if now.Sub(l.swept) < LoginWindow {
		return
	}
	l.swept = now
	for k, ts := range l.m {
		if len(recent(ts, now)) == 0 {
			delete(l.m, k)
		}
	}
}

// rateLimiter counts requests per key in fixed one-minute windows.
type rateLimiter struct {
	mu    sync.Mutex
	start time.Time // the current window's start
	n     map[string]int
}

func newRateLimiter() *rateLimiter { return &rateLimiter{n: make(map[string]int)} }

// allow counts a request of key against limit per minute; when over, it
// returns how long until the window ends.
func (l *rateLimiter) allow(key string, limit int, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= time.Minute || now.Before(l.start) {
		l.start, l.n = now, make(map[string]int)
	}
	if len(l.n) >= maxLimiterKeys && l.n[key] == 0 {
		return true, 0 // too many keys to track: let it through
	}
	l.n[key]++
	if l.n[key] > limit {
		return false, l.start.Add(time.Minute).Sub(now)
	}
	return true, 0
}

// limiters is the API's limiting state.
type limiters struct {
	loginUser, loginAddr *failureLimiter
	perIP, perToken      *rateLimiter
}

func newLimiters() *limiters {
	return &limiters{newFailureLimiter(), newFailureLimiter(), newRateLimiter(), newRateLimiter()}
}

// tooMany sets Retry-After (whole seconds, at least 1) and returns the
// 429 error.
func tooMany(w http.ResponseWriter, wait time.Duration, format string, args ...any) error {
	secs := int((wait + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return errs.Errorf(eTooMany, format, args...)
}

// loginThrottled answers a Basic login for user from the request's client
// while either has too many recent failures.
func (s *server) loginThrottled(w http.ResponseWriter, r *http.Request, user string) error {
	now := s.now()
	addr := s.clientAddr(r)
	wait := s.limits.loginUser.blocked(user, now)
	if d := s.limits.loginAddr.blocked(addr, now); d > wait {
		wait = d
	}
	if wait <= 0 {
		return nil
	}
	s.audit(r, "login_throttled", user, "")
	return tooMany(w, wait, "too many failed logins for this user or from this address; try again in %d seconds", int((wait+time.Second-1)/time.Second))
}

// loginFailed counts a failed Basic login against the user and the address.
func (s *server) loginFailed(r *http.Request, user string) {
	now := s.now()
	addr := s.clientAddr(r)
	u := s.limits.loginUser.fail(user, now)
	a := s.limits.loginAddr.fail(addr, now)
	if u || a {
		s.logger.Warn("too many failed logins; further logins answered 429 for a minute",
			"user", user, "client", addr, "user_blocked", u, "address_blocked", a)
	}
}

// rateLimit applies [config] rate_limit_per_ip and rate_limit_per_token
// (requests per minute; 0 = none) before any route runs.
func (s *server) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cfg := s.svc.Current()
		if cfg.RateLimitPerIP > 0 || cfg.RateLimitPerToken > 0 {
			now := s.now()
			if cfg.RateLimitPerIP > 0 {
				if ok, wait := s.limits.perIP.allow(s.clientAddr(r), cfg.RateLimitPerIP, now); !ok {
					s.writeError(w, r, tooMany(w, wait, "rate limit: at most %d requests a minute from one address", cfg.RateLimitPerIP))
					return
				}
			}
			if tok := r.Header.Get("X-AUTH-TOKEN"); cfg.RateLimitPerToken > 0 && tok != "" {
				if ok, wait := s.limits.perToken.allow(tok, cfg.RateLimitPerToken, now); !ok {
					s.writeError(w, r, tooMany(w, wait, "rate limit: at most %d requests a minute with one token", cfg.RateLimitPerToken))
					return
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}
