package vsphere

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// Fault types per class. Classification looks at the fault's kind (SOAP
// faults, task errors and their causes, via govmomi's fault.In), never at
// message text: vcsim's messages are Go type names, vCenter's are
// localized. A class given by a base type matches its subclasses too:
// vCenter answers with subclasses (E1).
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
		&types.NotAuthenticated{}, &types.InvalidLogin{},
	}
	transientFaults = []types.BaseMethodFault{
		&types.RequestCanceled{},
		&types.HostCommunication{}, &types.HostNotConnected{}, &types.HostNotReachable{},
		&types.TaskInProgress{}, &types.ConcurrentAccess{}, &types.Timedout{},
		&types.ResourceInUse{},
	}
)

// classErr is a class that wraps more than one sentinel.
type classErr struct {
	msg     string
	classes []error
}

func (c classErr) Error() string   { return c.msg }
func (c classErr) Unwrap() []error { return c.classes }

// errCapacity: vCenter lacks room (memory, CPU, storage, HA failover
// capacity) for what was asked. Retried with backoff like a transient
// fault, and told apart in the pool's status.
var errCapacity error = classErr{"out of capacity", []error{pool.ErrCapacity, pool.ErrTransient}}

// capacityFault reports the insufficient-resources family (all subclasses
// of InsufficientResourcesFault, e.g. InsufficientStorageSpace,
// InsufficientMemoryResourcesFault, InsufficientHostMemoryCapacityFault,
// InsufficientFailoverResourcesFault from HA admission control) and
// NoDiskSpace.
func capacityFault(f types.BaseMethodFault) bool {
	switch f.(type) {
	case types.BaseInsufficientResourcesFault, *types.NoDiskSpace:
		return true
	}
	return false
}

// permissionFault returns a NoPermission that is not a NotAuthenticated
// (its subclass for an ended session), or nil.
func permissionFault(err error) *types.NoPermission {
	var np *types.NoPermission
	fault.In(err, func(f types.BaseMethodFault, _ string, _ []types.LocalizableMessage) bool {
		if _, session := f.(*types.NotAuthenticated); session {
			return false
		}
		if b, ok := f.(types.BaseNoPermission); ok {
			np = b.GetNoPermission()
			return true
		}
		return false
	})
	return np
}

// permissionError names what vCenter said is missing: the privileges and
// the objects they are missing on.
func permissionError(np *types.NoPermission) error {
	var parts []string
	for _, mp := range np.MissingPrivileges {
		parts = append(parts, strings.Join(mp.PrivilegeIds, ", ")+" on "+mp.Entity.String())
	}
	if len(parts) == 0 && np.PrivilegeId != "" {
		on := "the object"
		if np.Object != nil {
			on = np.Object.String()
		}
		parts = append(parts, np.PrivilegeId+" on "+on)
	}
	if len(parts) == 0 {
		return fmt.Errorf("the vCenter user lacks a privilege (vCenter did not say which): %w", pool.ErrPermission)
	}
	return fmt.Errorf("the vCenter user lacks privilege %s: %w", strings.Join(parts, "; "), pool.ErrPermission)
}

// classify returns the pool sentinel err belongs to, or nil.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pool.ErrNotFound), errors.Is(err, pool.ErrExists),
		errors.Is(err, pool.ErrPowerState), errors.Is(err, pool.ErrAuth),
		errors.Is(err, pool.ErrTransient), errors.Is(err, pool.ErrPermission),
		errors.Is(err, pool.ErrForeign):
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
	capacity := false
	fault.In(err, func(f types.BaseMethodFault, _ string, _ []types.LocalizableMessage) bool {
		capacity = capacityFault(f)
		return capacity
	})
	switch {
	case capacity:
		return errCapacity
	case isFault(err, notFoundFaults):
		return pool.ErrNotFound
	case isFault(err, existsFaults):
		return pool.ErrExists
	case isFault(err, powerFaults):
		return pool.ErrPowerState
	case isFault(err, authFaults):
		return pool.ErrAuth
	case permissionFault(err) != nil:
		return permissionError(permissionFault(err))
	case fault.IsTransientError(err) || isFault(err, transientFaults):
		return pool.ErrTransient
	case soap.IsCertificateUntrusted(err):
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
