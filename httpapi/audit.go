package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/pool"
)

// The audit trail is one structured line (msg "audit") per checkout,
// return, lifetime or tag change, snapshot, revert, disk, ondemand request,
// token creation and deletion, configuration override and failed login:
// the action, what it acted on, the user, a short id of the token used
// (never the token or a password) and the client's address. It goes to
// Config.Audit, which main keeps at level info whatever log_level says.

// audit writes one audit line. user is who acted ("" when anonymous);
// tok is the token they used ("" when none), shown only by auth.TokenID.
func (s *server) audit(r *http.Request, action, user, tok string, attrs ...any) {
	args := make([]any, 0, 8+len(attrs))
	args = append(args, "action", action, "user", user)
	if tok != "" {
		args = append(args, "token_id", auth.TokenID(tok))
	}
	args = append(args, "client", s.clientAddr(r))
	args = append(args, attrs...)
	s.auditLog.Log(context.Background(), slog.LevelInfo, "audit", args...)
}

// auditCaller is audit for a request whose caller came from s.caller: the
// token header names the token only when it made the caller a user.
func (s *server) auditCaller(r *http.Request, action string, c pool.Caller, attrs ...any) {
	tok := ""
	if c.User != "" {
		tok = r.Header.Get("X-AUTH-TOKEN")
	}
	s.audit(r, action, c.User, tok, attrs...)
}

// clientAddr is the request's peer address, or, when the peer is one of
// Config.TrustedProxies, the last address in X-Forwarded-For that is not
// itself a trusted proxy. Without trusted proxies the header is ignored:
// anyone can write it.
func (s *server) clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if len(s.trusted) == 0 || !s.isTrusted(host) {
		return host
	}
	fwd := r.Header.Values("X-Forwarded-For")
	hops := strings.Split(strings.Join(fwd, ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if hop == "" {
			continue
		}
		if !s.isTrusted(hop) {
			if _, err := netip.ParseAddr(hop); err != nil {
				return host // not an address: do not believe the header
			}
			return hop
		}
		host = hop
	}
	return host
}

func (s *server) isTrusted(addr string) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ParseTrustedProxies reads [config] trusted_proxies: addresses or CIDR
// prefixes. main validates the config with it.
func ParseTrustedProxies(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, v := range list {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, err
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
