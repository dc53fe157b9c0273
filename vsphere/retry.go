package vsphere

import (
	"context"
	"errors"
	"io"
	"reflect"
	"syscall"
	"time"

	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
)

// readOnlyRetry re-sends a call that failed on the network (a connection
// reset or refused, a temporary error) up to attempts times in all, but
// only calls that change nothing in vCenter: reads of properties and
// inventory. A reset may come after vCenter received the request, so
// re-sending a task (clone, snapshot, reconfigure, power, destroy) or a
// create could run it twice; those fail at once and their caller finds out
// what happened. It replaces vim25.Retry, which re-sends any call.
type readOnlyRetry struct {
	inner    soap.RoundTripper
	attempts int
	delay    time.Duration // before each re-send
}

func newReadOnlyRetry(inner soap.RoundTripper) *readOnlyRetry {
	return &readOnlyRetry{inner: inner, attempts: 3, delay: 100 * time.Millisecond}
}

// RoundTrip implements soap.RoundTripper.
func (r *readOnlyRetry) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	err := r.inner.RoundTrip(ctx, req, res)
	for n := 1; n < r.attempts && err != nil && readOnly(req) && networkError(err); n++ {
		select {
		case <-ctx.Done():
			return err
		case <-time.After(r.delay):
		}
		v := reflect.ValueOf(res).Elem() // drop anything a failed try decoded
		v.Set(reflect.Zero(v.Type()))
		err = r.inner.RoundTrip(ctx, req, res)
	}
	return err
}

// readOnly reports whether re-sending req is harmless: it only reads.
// Anything not listed (every task, reconfigure, create, login) is not.
func readOnly(req soap.HasFault) bool {
	switch req.(type) {
	case *methods.RetrievePropertiesBody, *methods.RetrievePropertiesExBody,
		*methods.ContinueRetrievePropertiesExBody,
		*methods.WaitForUpdatesExBody, // by version: the same updates again
		*methods.FindByInventoryPathBody, *methods.FindChildBody,
		*methods.FindByUuidBody, *methods.FindAllByUuidBody,
		*methods.FindByIpBody, *methods.FindByDnsNameBody, *methods.FindByDatastorePathBody,
		*methods.RetrieveServiceContentBody, *methods.CurrentTimeBody,
		*methods.SessionIsActiveBody:
		return true
	}
	return false
}

// networkError reports an error of the connection rather than an answer
// of vCenter: a reset, an early EOF, a refused dial, or what the net
// package calls temporary. A SOAP fault or a cancelled context is not.
func networkError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return vim25.IsTemporaryNetworkError(err) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNABORTED) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
