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
