package auth

import (
	"fmt"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

var errExpired = errs.Errorf(errs.EUNAUTHORIZED, "token expired; ask for a new one with POST /token")

// Expires is when t stops being valid ([auth] token_ttl after its
// creation), zero when tokens never expire.
func (a *Auth) Expires(t store.Token) time.Time {
	if a.TokenTTL() <= 0 {
		return time.Time{}
	}
	return t.Created.Add(a.ttl)
}

// expired reports whether t has outlived token_ttl at now.
func (a *Auth) expired(t store.Token, now time.Time) bool {
	e := a.Expires(t)
	return !e.IsZero() && !now.Before(e)
}

// PurgeExpired deletes the tokens that outlived token_ttl (none when it is
// unset) and returns how many. The manager calls it with its other purges.
func (a *Auth) PurgeExpired() (int, error) {
	if a == nil || a.st == nil || a.ttl <= 0 {
		return 0, nil
	}
	n, err := a.st.PurgeTokens(a.Now().Add(-a.ttl))
	if err != nil {
		return 0, fmt.Errorf("auth: purge expired tokens: %w", err)
	}
	if n > 0 {
		a.logger.Info("auth: purged expired tokens", "count", n, "token_ttl_days", a.ttl.Hours()/24)
	}
	return n, nil
}
