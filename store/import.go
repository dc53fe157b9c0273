package store

import (
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/store/kv"
)

// ImportResult says what an import wrote and what it left, per item.
type ImportResult struct {
	Imported int
	// Skipped maps an item (a token id or a hostname, never a token) to
	// why it was not written: it exists already, or it is invalid.
	Skipped map[string]string
}

// ImportTokens writes tokens carried over from another pooler, in one
// transaction; a token that exists is skipped (so a second import writes
// nothing), as is one without a value or user. id names a token in
// Skipped without revealing it.
func (s *Store) ImportTokens(toks []Token, id func(string) string) (ImportResult, error) {
	r := ImportResult{Skipped: map[string]string{}}
	err := s.update(func(tx kv.Tx, now time.Time, d counts) error {
		r = ImportResult{Skipped: map[string]string{}}
		for _, t := range toks {
			switch {
			case t.Token == "" || t.User == "" || strings.ContainsRune(t.User, 0):
				r.Skipped[id(t.Token)] = "no token or no user"
				continue
			case tx.Get(bucketTokens, tokenKey(t.Token)) != nil:
				r.Skipped[id(t.Token)] = "already in the database"
				continue
			}
			if t.Created.IsZero() || t.Created.After(now) {
				t.Created = now
			}
			if err := tx.Put(bucketTokensUser, userKey(&t), []byte{}); err != nil {
				return err
			}
			if err := putToken(tx, &t); err != nil {
				return err
			}
			r.Imported++
		}
		return nil
	})
	return r, err
}

// ImportRunning records VMs checked out on another pooler as running here
// (see AddRunning), in one transaction; a hostname with a record is
// skipped, as is an invalid one.
func (s *Store) ImportRunning(vms []VM) (ImportResult, error) {
	r := ImportResult{Skipped: map[string]string{}}
	err := s.update(func(tx kv.Tx, now time.Time, d counts) error {
		r = ImportResult{Skipped: map[string]string{}}
		for _, vm := range vms {
			switch {
			case vm.Hostname == "" || len(vm.Hostname) > maxNameLen || !validName(vm.Pool):
				r.Skipped[vm.Hostname] = "bad hostname or pool name"
				continue
			case tx.Get(bucketVMs, []byte(vm.Hostname)) != nil:
				r.Skipped[vm.Hostname] = "already in the database"
				continue
			}
			if err := addRunning(tx, now, d, vm); err != nil {
				return err
			}
			r.Imported++
		}
		return nil
	})
	return r, err
}
