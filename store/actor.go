package store

import (
	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// Actor is who asks for a change of a VM, for the ownership rule: a VM
// checked out with a token may be changed only with a token of the same
// user. Checked is false when auth is off (nobody is checked) and for the
// pooler's own work; Anyone is that.
type Actor struct {
	User    string
	Checked bool
}

// Anyone is the actor the ownership rule does not apply to.
var Anyone = Actor{}

// Owns says whether a may change vm: nil, or EUNAUTHORIZED (no token) or
// EFORBIDDEN (another user's VM).
func (a Actor) Owns(vm *VM) error {
	if !a.Checked || vm.User == "" {
		return nil
	} else if a.User == "" {
		return errs.Errorf(errs.EUNAUTHORIZED, "VM %s was checked out with a token; a token is required", vm.Hostname)
	} else if a.User != vm.User {
		return errs.Errorf(errs.EFORBIDDEN, "VM %s belongs to another user", vm.Hostname)
	}
	return nil
}

// runningFor returns host's record if it is running and a may change it:
// ENOTFOUND for any other state, then the ownership rule.
func runningFor(tx kv.Tx, host string, a Actor) (VM, error) {
	vm, err := getVM(tx, host)
	if err != nil {
		return vm, err
	} else if vm.State != StateRunning {
		return vm, errs.Errorf(errs.ENOTFOUND, "VM %s is not running", host)
	}
	return vm, a.Owns(&vm)
}
