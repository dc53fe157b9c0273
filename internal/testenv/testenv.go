// Package testenv says which tests run in `go test -short`: the short run
// leaves out every test that starts a vCenter simulator, a pooler process,
// a browser or another slow outside part, so that it takes seconds.
//
// It imports nothing of the pooler's, so that any package's tests can use it.
package testenv

import "testing"

// SkipIfShort skips tb in `go test -short`; why says what the test starts
// ("starts the vCenter simulator").
func SkipIfShort(tb testing.TB, why string) {
	tb.Helper()
	if testing.Short() {
		tb.Skip(why)
	}
}
