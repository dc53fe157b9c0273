package vsphere

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// Fault types per class. Classification looks at the fault's type (SOAP
// faults, task errors and their causes, via govmomi's fault.Is), never at
// message text: vcsim's messages are Go type names, vCenter's are localized.
var (
	notFoundFaults = []types.BaseMethodFault{
		&types.ManagedObjectNotFound{}, &types.NotFound{}, &types.FileNotFound{},
	}
	existsFaults = []types.BaseMethodFault{
		&types.DuplicateName{}, &types.AlreadyExists{}, &types.FileAlreadyExists{},
	}
	powerFaults = []types.BaseMethodFault{
		&types.InvalidPowerState{},
	}
	authFaults = []types.BaseMethodFault{
		&types.NotAuthenticated{}, &types.InvalidLogin{}, &types.NoPermission{},
	}
	transientFaults = []types.BaseMethodFault{
		&types.InsufficientResourcesFault{}, &types.RequestCanceled{},
		&types.HostCommunication{}, &types.HostNotConnected{}, &types.HostNotReachable{},
		&types.TaskInProgress{}, &types.ConcurrentAccess{}, &types.Timedout{},
		&types.ResourceInUse{},
	}
)

// classify returns the pool sentinel err belongs to, or nil.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pool.ErrNotFound), errors.Is(err, pool.ErrExists),
		errors.Is(err, pool.ErrPowerState), errors.Is(err, pool.ErrAuth),
		errors.Is(err, pool.ErrTransient):
		return nil // already classified
	}
	var nf *find.NotFoundError
	var dnf *find.DefaultNotFoundError
	if errors.As(err, &nf) || errors.As(err, &dnf) {
		return pool.ErrNotFound
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return pool.ErrTransient
	}
	if isFault(err, notFoundFaults) {
		return pool.ErrNotFound
	}
	if isFault(err, existsFaults) {
		return pool.ErrExists
	}
	if isFault(err, powerFaults) {
		return pool.ErrPowerState
	}
	if isFault(err, authFaults) {
		return pool.ErrAuth
	}
	if fault.IsTransientError(err) || isFault(err, transientFaults) {
		return pool.ErrTransient
	}
	if soap.IsCertificateUntrusted(err) {
		return nil // a configuration error: retrying will not help
	}
	// Connection refused or reset, timeouts, HTTP 5xx from a proxy or a
	// restarting vCenter: *url.Error and *net.OpError are net.Errors.
	var ne net.Error
	if errors.As(err, &ne) {
		return pool.ErrTransient
	}
	return nil
}

func isFault(err error, list []types.BaseMethodFault) bool {
	for _, f := range list {
		if fault.Is(err, f) {
			return true
		}
	}
	return false
}

// wrapErr adds the operation and the pool sentinel to err, so that
// errors.Is(err, pool.ErrX) works and the message keeps the fault.
func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if class := classify(err); class != nil {
		return fmt.Errorf("vsphere: %s: %w: %w", op, class, err)
	}
	return fmt.Errorf("vsphere: %s: %w", op, err)
}

// notFound builds an ErrNotFound for an inventory path that does not exist.
func notFound(what, path string) error {
	return fmt.Errorf("%s %q: %w", what, path, pool.ErrNotFound)
}
