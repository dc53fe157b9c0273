package pool

import (
	"crypto/rand"
	"errors"

	"github.com/vmpooler/vmpooler/store"
)

// hostnameAlphabet is the seed's hostname alphabet (fq6qlpjlsskycq6).
const hostnameAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// hostnameLength is the number of random characters after the prefix.
const hostnameLength = 15

// NewHostname returns prefix followed by 15 random lowercase letters and
// digits drawn from crypto/rand. Uniqueness against existing records is the
// caller's job (store.AddPending answers ECONFLICT for a name in use).
func NewHostname(prefix string) string {
	// 252 is the largest multiple of 36 below 256: rejecting bytes >= 252
	// keeps every character equally likely.
	const limit = 252
	out := make([]byte, 0, len(prefix)+hostnameLength)
	out = append(out, prefix...)
	buf := make([]byte, 32)
	for n := 0; n < hostnameLength; {
		if _, err := rand.Read(buf); err != nil {
			panic("pool: crypto/rand failed: " + err.Error()) // never happens on Linux
		}
		for _, b := range buf {
			if b >= limit || n == hostnameLength {
				continue
			}
			out = append(out, hostnameAlphabet[b%36])
			n++
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
		} else if store.ErrorCode(err) != store.ECONFLICT {
			return vm, err
		}
	}
	return vm, errors.Join(errors.New("no free hostname after retries"), err)
}
