package store

import (
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
