package errs

import (
	"errors"
	"fmt"
	"testing"
)

func TestWithDetails(t *testing.T) {
	base := &Error{Code: EINVALID, Message: "bad", Details: []Detail{{Key: "failure", Value: []string{"x"}}}}
	err := WithDetails(fmt.Errorf("ctx: %w", base), Detail{Key: "message", Value: "bad"})
	if ErrorCode(err) != EINVALID || ErrorMessage(err) != "bad" || !errors.Is(err, base) {
		t.Errorf("code %q, message %q, chain kept %v", ErrorCode(err), ErrorMessage(err), errors.Is(err, base))
	}
	if d := ErrorDetails(err); len(d) != 2 || d[0].Key != "failure" || d[1].Key != "message" {
		t.Errorf("details %+v, want failure then message", d)
	}
	if len(base.Details) != 1 {
		t.Errorf("base details changed: %+v", base.Details)
	}
	if got := WithDetails(errors.New("disk on fire")).Error(); got != "disk on fire" {
		t.Errorf("Error() = %q, want the cause's text for the log", got)
	}
}

// WithCause shows clients the message only; the log sees the cause too,
// and the chain reaches it.
func TestWithCause(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.5:2379: connection refused")
	err := WithCause(cause, EUNAVAILABLE, "the database cannot be reached; try again")
	if ErrorCode(err) != EUNAVAILABLE || ErrorMessage(err) != "the database cannot be reached; try again" {
		t.Errorf("client sees %q %q", ErrorCode(err), ErrorMessage(err))
	}
	if got, want := err.Error(), "the database cannot be reached; try again: "+cause.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, cause) {
		t.Error("errors.Is does not reach the cause")
	}
	if d := WithDetails(err, Detail{Key: "k", Value: 1}); ErrorMessage(d) != ErrorMessage(err) || !errors.Is(d, cause) {
		t.Errorf("WithDetails lost the message or the cause: %q", ErrorMessage(d))
	}
}
