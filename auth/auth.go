// Package auth checks users (an htpasswd file of bcrypt hashes, or a dummy
// provider for tests) and issues, checks and revokes API tokens kept in the
// store.
//
// It never imports net/http: httpapi turns Basic credentials and the
// X-AUTH-TOKEN header into calls here and maps the *errs.Error codes this
// package returns to statuses. Secrets (passwords, tokens, hashes) never
// appear in logs or error messages.
package auth

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// Config is the [auth] section.
type Config struct {
	Provider string `toml:"provider"` // "htpasswd" | "ldap" | "dummy"
	File     string `toml:"file"`     // htpasswd file (bcrypt entries, as made by `htpasswd -B`)
	// Admins may delete any user's token (DELETE /token/<token>) and,
	// when the list is not empty, are the only users whose tokens may call
	// the operator routes (/config/* writes, /poolreset).
	Admins []string `toml:"admins"`
	// LDAP is [auth.ldap], for provider "ldap".
	LDAP *LDAPConfig `toml:"ldap"`
	// TokenTTL is how many days a token lives (0: forever, as upstream).
	TokenTTL float64 `toml:"token_ttl,omitempty"`
}

// Provider names accepted in Config.Provider.
const (
	ProviderHtpasswd = "htpasswd"
	ProviderDummy    = "dummy"
)

// DefaultTouchEvery is how often, at most, Validate writes a token's LastUsed.
const DefaultTouchEvery = time.Minute

// Auth checks users and manages tokens. Set the exported fields after New
// and before first use.
type Auth struct {
	// Now is the clock used to stamp new tokens and to decide when a
	// token's LastUsed is due for a write.
	Now func() time.Time
	// TouchEvery is the least time between two writes of one token's
	// LastUsed, so validating a token on every request stays a read.
	TouchEvery time.Duration

	provider string // "" when disabled
	st       TokenStore
	logger   *slog.Logger
	htpasswd atomic.Pointer[htpasswd] // nil unless provider is htpasswd; SetFile swaps it
	ldap     *ldapAuth                // nil unless provider is ldap
	admins   map[string]bool
	ttl      time.Duration // 0: tokens never expire

	mu      sync.Mutex
	touched map[string]time.Time // token -> when this process last wrote LastUsed
}

// TokenStore is what auth needs of the database: its token operations,
// each one transaction. *store.Store implements it on either engine.
type TokenStore interface {
	CreateToken(t store.Token) error
	GetToken(token string) (store.Token, error)
	TokensByUser(user string) ([]store.Token, error)
	TouchToken(token string) error
	DeleteToken(token, owner string) error
	PurgeTokens(cutoff time.Time) (int, error)
}

var _ TokenStore = (*store.Store)(nil)

// New returns an Auth for cfg backed by st. A nil cfg disables
// authentication (Enabled reports false). An unknown provider, a missing or
// unreadable htpasswd file or an entry that is not bcrypt is an error that
// names the file and line.
func New(cfg *Config, st TokenStore, logger *slog.Logger) (*Auth, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if p, ok := st.(*store.Store); ok && p == nil {
		st = nil // no store (tokens disabled), not a nil *Store that passes a nil check
	}
	a := &Auth{
		Now:        time.Now,
		TouchEvery: DefaultTouchEvery,
		st:         st,
		logger:     logger,
		touched:    make(map[string]time.Time),
	}
	if cfg == nil {
		return a, nil
	}
	switch cfg.Provider {
	case ProviderHtpasswd:
		if cfg.File == "" {
			return nil, fmt.Errorf("auth: provider %q needs [auth] file", ProviderHtpasswd)
		}
		h, err := openHtpasswd(cfg.File, logger)
		if err != nil {
			return nil, err
		}
		a.htpasswd.Store(h)
	case ProviderLDAP:
		l, err := newLDAP(cfg.LDAP, logger)
		if err != nil {
			return nil, err
		}
		a.ldap = l
	case ProviderDummy:
		logger.Warn("auth: the dummy provider accepts any user whose password differs from the name; it is for tests only, never use it in production")
	case "":
		return nil, fmt.Errorf("auth: [auth] provider is required (%q, %q or %q)", ProviderHtpasswd, ProviderLDAP, ProviderDummy)
	default:
		return nil, fmt.Errorf("auth: unknown provider %q (want %q, %q or %q)", cfg.Provider, ProviderHtpasswd, ProviderLDAP, ProviderDummy)
	}
	if cfg.TokenTTL < 0 {
		return nil, fmt.Errorf("auth: [auth] token_ttl must not be negative (days; leave it out for tokens that never expire)")
	}
	a.ttl = time.Duration(cfg.TokenTTL * float64(24*time.Hour))
	a.provider = cfg.Provider
	a.admins = make(map[string]bool, len(cfg.Admins))
	for _, u := range cfg.Admins {
		a.admins[u] = true
	}
	if len(a.admins) == 0 {
		logger.Warn("auth: [auth] admins is not set: any user with a token may change pools (/config/*, /poolreset); list the operators in admins")
	}
	return a, nil
}

// IsAdmin reports whether user is in [auth] admins.
func (a *Auth) IsAdmin(user string) bool { return a != nil && user != "" && a.admins[user] }

// AdminsSet reports whether [auth] admins lists anyone: then only they may
// call the operator routes.
func (a *Auth) AdminsSet() bool { return a != nil && len(a.admins) > 0 }

// TokenTTL is how long a token lives, 0 for ever.
func (a *Auth) TokenTTL() time.Duration {
	if a == nil {
		return 0
	}
	return a.ttl
}

// Enabled reports whether an [auth] section configured a provider. When it
// is false httpapi answers the /token routes with 404 and ignores token
// headers, as upstream does. The token methods work either way (given a
// store), so tokens issued while auth was on stay checkable.
func (a *Auth) Enabled() bool { return a != nil && a.provider != "" }

// Login checks a user's password. Any failure is EUNAUTHORIZED with the same
// message, so callers cannot tell an unknown user from a wrong password.
// With auth disabled it is ENOTFOUND.
func (a *Auth) Login(user, password string) error {
	var ok bool
	switch a.provider {
	case ProviderHtpasswd:
		ok = a.htpasswd.Load().check(user, password)
	case ProviderLDAP:
		return a.ldap.login(user, password)
	case ProviderDummy:
		// Upstream's rule: success iff the password differs from the name.
		ok = user != "" && subtle.ConstantTimeCompare([]byte(user), []byte(password)) == 0
	default:
		return errDisabled
	}
	if !ok {
		return errLogin
	}
	return nil
}

var (
	errDisabled = errs.Errorf(errs.ENOTFOUND, "authentication is not configured")
	errLogin    = errs.Errorf(errs.EUNAUTHORIZED, "authentication failed")
)
