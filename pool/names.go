package pool

import (
	"crypto/rand"
	"errors"
	"strings"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// ValidChars reports whether s is made only of ASCII letters, digits and
// the characters of punct: the one character-set check behind host labels,
// tag keys, request ids, disk ids and bare TOML keys. Lengths and the empty
// string are each caller's rule.
func ValidChars(s, punct string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(punct, c) >= 0) {
			return false
		}
	}
	return true
}

// hostnameAlphabet is the seed's hostname alphabet (fq6qlpjlsskycq6).
const hostnameAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// hostnameLength is the number of random characters after the prefix.
const hostnameLength = 15

// NewHostname returns prefix followed by 15 random lowercase letters and
// digits drawn from crypto/rand. Uniqueness against existing records is the
// caller's job (store.AddPending answers ECONFLICT for a name in use).
func NewHostname(prefix string) string {
	return prefix + randomString(hostnameAlphabet, hostnameAlphabet, hostnameLength)
}

// randomString returns n characters drawn from crypto/rand, every one
// equally likely: the first from first, the others from rest (alphabets of
// at most 256 characters).
func randomString(first, rest string, n int) string {
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			panic("pool: crypto/rand failed: " + err.Error()) // never happens on Linux
		}
		for _, b := range buf {
			alphabet := rest
			if len(out) == 0 {
				alphabet = first
			}
			// Reject bytes at or above the largest multiple of the
			// alphabet's size: b % size is then uniform.
			if limit := 256 - 256%len(alphabet); int(b) >= limit || len(out) == n {
				continue
			}
			out = append(out, alphabet[int(b)%len(alphabet)])
		}
	}
	return string(out)
}

// managerNameTries is how many hostnames the manager draws before giving up
// on a clone because every one collided with an existing record.
const managerNameTries = 5

// addPendingVM records vm as pending under a fresh hostname, drawing another
// name when the store reports a conflict. It returns the stored record.
func (m *Manager) addPendingVM(vm store.VM) (store.VM, error) {
	var err error
	for range managerNameTries {
		vm.Hostname = m.NewName(m.Config.Prefix)
		if err = m.Store.AddPending(vm); err == nil {
			vm.State = store.StatePending
			vm.Started = m.Now()
			return vm, nil
		} else if errs.ErrorCode(err) != errs.ECONFLICT {
			return vm, err
		}
	}
	return vm, errors.Join(errors.New("no free hostname after retries"), err)
}
