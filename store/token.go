package store

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// tokenKey is the key of a token: its SHA-256, so that the time a lookup
// takes says nothing about the token's bytes. The record keeps the token
// itself because GET /token lists it to its owner.
func tokenKey(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// userKey is a token's entry in tokens_by_user: the user, a zero byte, the
// creation time and the token key, so one user's tokens sort oldest first.
func userKey(t *Token) []byte {
	k := append([]byte(t.User), 0)
	k = append(k, timeKey(t.Created, "")...)
	return append(k, tokenKey(t.Token)...)
}

// getToken decodes the token stored under key. ENOTFOUND if none.
// Messages never contain the token.
func getToken(tx kv.Tx, key []byte) (Token, error) {
	v := tx.Get(bucketTokens, key)
	if v == nil {
		// Not decode's message: this one may reach the client, without the key.
		return Token{}, errs.Errorf(errs.ENOTFOUND, "token not found")
	}
	return decode(v, "token %x", key, unmarshalJSON[Token])
}

// putToken writes t.
func putToken(tx kv.Tx, t *Token) error {
	return putJSON(tx, bucketTokens, tokenKey(t.Token), t, "token")
}

// CreateToken stores a token. ECONFLICT if it exists. Created is set to now
// when zero. EINVALID for an empty token or user, or a user with a zero byte.
func (s *Store) CreateToken(t Token) error {
	if t.Token == "" || t.User == "" {
		return errs.Errorf(errs.EINVALID, "a token needs a value and a user")
	} else if strings.ContainsRune(t.User, 0) {
		return errs.Errorf(errs.EINVALID, "bad user name")
	}
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		if tx.Get(bucketTokens, tokenKey(t.Token)) != nil {
			return errs.Errorf(errs.ECONFLICT, "token already exists")
		}
		if t.Created.IsZero() {
			t.Created = now
		}
		if err := tx.Put(bucketTokensUser, userKey(&t), []byte{}); err != nil {
			return err
		}
		return putToken(tx, &t)
	})
}

// GetToken returns a token. ENOTFOUND if unknown.
func (s *Store) GetToken(token string) (Token, error) {
	return read(s, func(tx kv.Tx) (Token, error) { return getToken(tx, tokenKey(token)) })
}

// TokensByUser lists a user's tokens, oldest first.
func (s *Store) TokensByUser(user string) ([]Token, error) {
	return s.listTokens(append([]byte(user), 0))
}

// listTokens lists the tokens whose user index entries start with prefix,
// in index order (by user, then oldest first).
func (s *Store) listTokens(prefix []byte) ([]Token, error) {
	var out []Token
	err := s.view(func(tx kv.Tx) error {
		return tx.Scan(bucketTokensUser, prefix, nil, func(k, _ []byte) (bool, error) {
			if len(k) < sha256.Size {
				return false, fmt.Errorf("bad user index entry %x", k)
			}
			t, err := getToken(tx, slices.Clone(k[len(k)-sha256.Size:]))
			if err != nil {
				return false, fmt.Errorf("user index entry: %v", err)
			}
			out = append(out, t)
			return true, nil
		})
	})
	return out, err
}

// TouchToken sets a token's LastUsed to now. ENOTFOUND if unknown.
func (s *Store) TouchToken(token string) error {
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		t, err := getToken(tx, tokenKey(token))
		if err != nil {
			return err
		}
		t.LastUsed = now
		return putToken(tx, &t)
	})
}

// DeleteToken removes a token, if it belongs to owner ("": whoever owns
// it), in the transaction that checks that. ENOTFOUND if unknown;
// EFORBIDDEN for another user's token.
func (s *Store) DeleteToken(token, owner string) error {
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		key := tokenKey(token)
		t, err := getToken(tx, key)
		if err != nil {
			return err
		} else if owner != "" && t.User != owner {
			return errs.Errorf(errs.EFORBIDDEN, "the token belongs to another user")
		}
		if err := tx.Delete(bucketTokensUser, userKey(&t)); err != nil {
			return err
		}
		return tx.Delete(bucketTokens, key)
	})
}

// AllTokens lists every token, by user and then oldest first (for the
// "vmpooler token" command).
func (s *Store) AllTokens() ([]Token, error) { return s.listTokens(nil) }
