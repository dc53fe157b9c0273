package store

import (
	"errors"
	"fmt"
	"testing"
)

func TestDurationsAdd(t *testing.T) {
	a := Durations{Count: 2, Sum: 10, Min: 3, Max: 7}
	b := Durations{Count: 1, Sum: 1, Min: 1, Max: 1}
	if got, want := a.Add(b), (Durations{Count: 3, Sum: 11, Min: 1, Max: 7}); got != want {
		t.Errorf("a+b = %+v, want %+v", got, want)
	}
	if got := (Durations{}).Add(a); got != a {
		t.Errorf("0+a = %+v, want a: an empty side has no min", got)
	}
	if got := a.Add(Durations{}); got != a {
		t.Errorf("a+0 = %+v, want a", got)
	}
}

func TestWithDetails(t *testing.T) {
	base := &Error{Code: EINVALID, Message: "bad", Details: []Detail{{"failure", []string{"x"}}}}
	err := WithDetails(fmt.Errorf("ctx: %w", base), Detail{"message", "bad"})
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
