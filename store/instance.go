package store

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// Meta keys of the pooler's identity.
var (
	keyInstance = []byte("instance") // this database's pooler instance id
	keyAdopted  = []byte("adopted")  // JSON list of instance ids taken over
)

// instanceIDLen is the length of an instance id: 16 base-32 characters
// (80 random bits).
const instanceIDLen = 16

// ensureInstance returns the file's instance id, creating it on first
// open: every VM this pooler clones carries it, so that a pooler with
// another (or a fresh) database knows those VMs are not its own.
func ensureInstance(tx kv.Tx) (string, error) {
	if v := tx.Get(bucketMeta, keyInstance); v != nil {
		return string(v), nil
	}
	id := strings.ToLower(rand.Text()[:instanceIDLen])
	return id, tx.Put(bucketMeta, keyInstance, []byte(id))
}

// loadAdopted reads the adopted instance ids.
func loadAdopted(tx kv.Tx) ([]string, error) {
	v := tx.Get(bucketMeta, keyAdopted)
	if v == nil {
		return nil, nil
	}
	var ids []string
	if err := json.Unmarshal(v, &ids); err != nil {
		return nil, fmt.Errorf("bad adopted instance list: %w", err)
	}
	return ids, nil
}

// Instance returns this database's pooler instance id: created once, with
// the file, and kept for its life.
func (s *Store) Instance() string { return s.instance }

// Adopted returns the instance ids whose VMs this pooler has taken over
// (see Adopt), as of Open.
func (s *Store) Adopted() []string { return slices.Clone(s.adopted) }

// ValidInstance reports whether id has the form of an instance id.
func ValidInstance(id string) bool {
	if len(id) != instanceIDLen {
		return false
	}
	for _, c := range id {
		if !('a' <= c && c <= 'z' || '2' <= c && c <= '7') {
			return false
		}
	}
	return true
}

// Adopt records that the VMs of another pooler instance (a lost or
// replaced database) are to be treated as this pooler's from the next Open
// on. EINVALID for a malformed id or this database's own.
func (s *Store) Adopt(id string) error {
	if !ValidInstance(id) {
		return errs.Errorf(errs.EINVALID, "instance id %q: want %d characters a-z, 2-7", id, instanceIDLen)
	} else if id == s.instance {
		return errs.Errorf(errs.EINVALID, "instance %s is this database's own", id)
	}
	return s.update(func(tx kv.Tx, _ time.Time, _ counts) error {
		ids, err := loadAdopted(tx)
		if err != nil {
			return err
		}
		if slices.Contains(ids, id) {
			return nil
		}
		return putJSON(tx, bucketMeta, keyAdopted, append(ids, id), "adopted instance list")
	})
}

// AddRunning records a VM taken over from an adopted instance that was
// checked out there: it enters state running with the checkout time and
// user it carries, and lives out its lifetime. ECONFLICT if the hostname
// has a record.
func (s *Store) AddRunning(vm VM) error {
	if err := checkNewVM(vm); err != nil {
		return err
	}
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		return addRunning(tx, now, d, vm)
	})
}

// addRunning is AddRunning within tx.
func addRunning(tx kv.Tx, now time.Time, d counts, vm VM) error {
	if tx.Get(bucketVMs, []byte(vm.Hostname)) != nil {
		return errs.Errorf(errs.ECONFLICT, "vm %s already exists", vm.Hostname)
	}
	vm.State = StateRunning
	if vm.CheckedOut.IsZero() || vm.CheckedOut.After(now) {
		vm.CheckedOut = now
	}
	vm.Started, vm.Cloned, vm.Ready = vm.CheckedOut, vm.CheckedOut, vm.CheckedOut
	vm.Completed, vm.Destroyed = time.Time{}, time.Time{}
	if err := index(tx, d, &vm); err != nil {
		return err
	}
	return putVM(tx, &vm)
}
