package vsphere

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
)

// failingRT fails the first len(errs) calls with errs, in order, then
// succeeds; it counts calls.
type failingRT struct {
	errs  []error
	calls int
}

func (f *failingRT) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	f.calls++
	if f.calls <= len(f.errs) {
		return f.errs[f.calls-1]
	}
	return nil
}

func netErr(op string, errno syscall.Errno) error {
	return &url.Error{Op: "Post", URL: "https://vc.example/sdk",
		Err: &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, errno)}}
}

// Only calls that change nothing are sent again after a network error:
// a task or a create that vCenter may have received before the connection
// broke is never sent twice.
func TestReadOnlyRetry(t *testing.T) {
	reset := netErr("read", syscall.ECONNRESET)
	timedOut := netErr("read", syscall.ETIMEDOUT) // "temporary" to vim25.Retry, yet vCenter may have the request
	refused := netErr("dial", syscall.ECONNREFUSED)
	eof := &url.Error{Op: "Post", URL: "https://vc.example/sdk", Err: fmt.Errorf("reading body: %w", io.EOF)}
	cancelled := &url.Error{Op: "Post", URL: "https://vc.example/sdk", Err: context.Canceled}
	fault := errors.New("ServerFaultCode: NotFound")
	readOnlyCalls := map[string]soap.HasFault{
		"RetrievePropertiesEx":         &methods.RetrievePropertiesExBody{},
		"RetrieveProperties":           &methods.RetrievePropertiesBody{},
		"ContinueRetrievePropertiesEx": &methods.ContinueRetrievePropertiesExBody{},
		"FindByInventoryPath":          &methods.FindByInventoryPathBody{},
		"FindChild":                    &methods.FindChildBody{},
		"RetrieveServiceContent":       &methods.RetrieveServiceContentBody{},
		"CurrentTime":                  &methods.CurrentTimeBody{},
		"WaitForUpdatesEx":             &methods.WaitForUpdatesExBody{},
	}
	otherCalls := map[string]soap.HasFault{
		"CreateSnapshot_Task":     &methods.CreateSnapshot_TaskBody{},
		"RevertToSnapshot_Task":   &methods.RevertToSnapshot_TaskBody{},
		"ReconfigVM_Task":         &methods.ReconfigVM_TaskBody{},
		"CloneVM_Task":            &methods.CloneVM_TaskBody{},
		"PowerOnVM_Task":          &methods.PowerOnVM_TaskBody{},
		"PowerOffVM_Task":         &methods.PowerOffVM_TaskBody{},
		"Destroy_Task":            &methods.Destroy_TaskBody{},
		"CreateFolder":            &methods.CreateFolderBody{},
		"SetField":                &methods.SetFieldBody{},
		"AddCustomFieldDef":       &methods.AddCustomFieldDefBody{},
		"Login":                   &methods.LoginBody{},
		"CreatePropertyCollector": &methods.CreatePropertyCollectorBody{},
	}
	try := func(t *testing.T, body soap.HasFault, errs ...error) (int, error) {
		t.Helper()
		inner := &failingRT{errs: errs}
		r := newReadOnlyRetry(inner)
		r.delay = 0
		err := r.RoundTrip(context.Background(), body, body)
		return inner.calls, err
	}
	for name, body := range readOnlyCalls {
		t.Run(name, func(t *testing.T) {
			for _, e := range []error{reset, timedOut, refused, eof} {
				if n, err := try(t, body, e); n != 2 || err != nil {
					t.Errorf("after %v: %d calls, %v; want sent again and success", e, n, err)
				}
			}
			if n, err := try(t, body, reset, reset, reset, reset); n != 3 || !errors.Is(err, syscall.ECONNRESET) {
				t.Errorf("always reset: %d calls, %v; want 3 and the reset", n, err)
			}
			for _, e := range []error{fault, cancelled} {
				if n, err := try(t, body, e); n != 1 || err != e {
					t.Errorf("after %v: %d calls, %v; want 1 and the error", e, n, err)
				}
			}
		})
	}
	for name, body := range otherCalls {
		t.Run(name, func(t *testing.T) {
			for _, e := range []error{reset, timedOut, refused, eof, fault} {
				if n, err := try(t, body, e); n != 1 || err != e {
					t.Errorf("after %v: sent %d times, %v; want once and the error", e, n, err)
				}
			}
		})
	}
}
