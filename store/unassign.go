package store

import (
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// Unassign puts VMs that a checkout handed out but that never reached a
// client (a waiting checkout whose client went away at that moment) back
// to ready, in one transaction. Each keeps its Ready time, so it is first
// in line again; user, lifetime and checkout time are cleared. A VM that is
// not running any more (returned meanwhile) is left as it is.
func (s *Store) Unassign(hosts []string) error {
	return s.update(func(tx kv.Tx, _ time.Time, d counts) error {
		for _, host := range hosts {
			vm, err := getVM(tx, host)
			if errs.ErrorCode(err) == errs.ENOTFOUND {
				continue
			} else if err != nil {
				return err
			}
			if vm.State != StateRunning {
				continue
			}
			if err := unindex(tx, d, &vm); err != nil {
				return err
			}
			vm.State, vm.CheckedOut, vm.User, vm.Lifetime = StateReady, time.Time{}, "", 0
			if err := index(tx, d, &vm); err != nil {
				return err
			}
			if err := putVM(tx, &vm); err != nil {
				return err
			}
		}
		return nil
	})
}
