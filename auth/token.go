package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// TokenLen is the length of a token, as upstream: one letter from a..y, then
// 31 characters from [a-z0-9].
const TokenLen = 32

const (
	tokenFirst = "abcdefghijklmnopqrstuvwxy"
	tokenRest  = "abcdefghijklmnopqrstuvwxyz0123456789"
)

// CreateToken issues a new token for user and stores it with Created = Now().
// The caller has already checked the user's password with Login.
func (a *Auth) CreateToken(user string) (store.Token, error) {
	if a.st == nil {
		return store.Token{}, errDisabled
	} else if user == "" {
		return store.Token{}, errs.Errorf(errs.EINVALID, "user name is required")
	}
	// A collision is 1 in 25·36³¹; retrying on ECONFLICT costs nothing.
	for range 3 {
		t := store.Token{Token: newToken(), User: user, Created: a.Now()}
		err := a.st.CreateToken(t)
		if errs.ErrorCode(err) == errs.ECONFLICT {
			continue
		} else if err != nil {
			return store.Token{}, fmt.Errorf("auth: create token: %w", err)
		}
		return t, nil
	}
	return store.Token{}, errs.Errorf(errs.EINTERNAL, "could not create a unique token")
}

// Validate returns the token's record, or EUNAUTHORIZED if the token is
// malformed or unknown, or (htpasswd) its user is no longer in the file. It records the use in LastUsed, but writes it at most
// once per TouchEvery per token so that checking a token stays a read on the
// hot path; the returned LastUsed is Now() when it wrote.
func (a *Auth) Validate(token string) (store.Token, error) {
	if a.st == nil {
		return store.Token{}, errDisabled
	} else if !wellFormed(token) {
		return store.Token{}, errBadToken
	}
	t, err := a.st.GetToken(token)
	if errs.ErrorCode(err) == errs.ENOTFOUND {
		return store.Token{}, errBadToken
	} else if err != nil {
		return store.Token{}, fmt.Errorf("auth: validate token: %w", err)
	}
	if h := a.htpasswd.Load(); h != nil && !h.has(t.User) {
		return store.Token{}, errBadToken // the user was removed from the file
	}
	now := a.Now()
	if a.expired(t, now) {
		return store.Token{}, errExpired
	}
	if !a.touchDue(token, t, now) {
		return t, nil
	}
	if err := a.st.TouchToken(token); errs.ErrorCode(err) == errs.ENOTFOUND {
		a.forget(token) // deleted meanwhile
		return store.Token{}, errBadToken
	} else if err != nil {
		// The token is valid; a missed LastUsed write must not fail the request.
		a.forget(token)
		a.logger.Error("auth: cannot record token use", "user", t.User, "err", err)
		return t, nil
	}
	t.LastUsed = now
	return t, nil
}

// touchDue reports whether token's LastUsed should be written now, and if so
// claims the write so concurrent requests with the same token do not repeat it.
func (a *Auth) touchDue(token string, t store.Token, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	last, ok := a.touched[token]
	if !ok {
		last = t.LastUsed // written before this process started, or never
	}
	if !last.IsZero() && now.Sub(last) < a.TouchEvery && last.Sub(now) < a.TouchEvery {
		return false
	}
	a.touched[token] = now
	return true
}

func (a *Auth) forget(token string) {
	a.mu.Lock()
	delete(a.touched, token)
	a.mu.Unlock()
}

// Tokens lists user's tokens that have not expired, oldest first.
func (a *Auth) Tokens(user string) ([]store.Token, error) {
	if a.st == nil {
		return nil, errDisabled
	}
	ts, err := a.st.TokensByUser(user)
	if err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	now := a.Now()
	live := ts[:0]
	for _, t := range ts {
		if !a.expired(t, now) { // expired ones wait for the purge
			live = append(live, t)
		}
	}
	return live, nil
}

// DeleteToken revokes a token of owner ("": whoever owns it), checked in
// the transaction that deletes it: ENOTFOUND if it is malformed or
// unknown, EFORBIDDEN if it belongs to another user.
func (a *Auth) DeleteToken(token, owner string) error {
	if a.st == nil {
		return errDisabled
	} else if !wellFormed(token) {
		return errNoToken
	}
	err := a.st.DeleteToken(token, owner)
	if err == nil {
		a.forget(token)
	}
	if code := errs.ErrorCode(err); code == errs.ENOTFOUND {
		return errNoToken
	} else if code == errs.EFORBIDDEN {
		return err
	} else if err != nil {
		return fmt.Errorf("auth: delete token: %w", err)
	}
	return nil
}

var (
	errBadToken = errs.Errorf(errs.EUNAUTHORIZED, "invalid token")
	errNoToken  = errs.Errorf(errs.ENOTFOUND, "token not found")
)

// newToken returns a random token from crypto/rand. Each character is drawn
// by rejection sampling, so every character of its alphabet is equally likely.
func newToken() string {
	var (
		b   [TokenLen]byte
		buf [64]byte
		pos = len(buf)
	)
	for i := range b {
		alphabet := tokenRest
		if i == 0 {
			alphabet = tokenFirst
		}
		limit := 256 - 256%len(alphabet) // bytes >= limit would bias the result
		for {
			if pos == len(buf) {
				rand.Read(buf[:]) // never fails (crypto/rand since Go 1.24)
				pos = 0
			}
			c := int(buf[pos])
			pos++
			if c < limit {
				b[i] = alphabet[c%len(alphabet)]
				break
			}
		}
	}
	return string(b[:])
}

// wellFormed reports whether s has the shape of a token, so garbage never
// reaches the store.
func wellFormed(s string) bool {
	if len(s) != TokenLen || s[0] < 'a' || s[0] > 'y' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// TokenID is a short, stable id of a token for logs: the first 6 hex
// digits of its SHA-256. It does not reveal the token.
func TokenID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:3])
}
