package httpapi

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
)

// While a service is down every request fails the same way: its cause is
// logged once per downLogEvery, with a count of the answers not logged.
func TestDownLogRate(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	var d downLog
	r := httptest.NewRequest("POST", "/api/v1/vm/debian", nil)
	err := errs.WithCause(errors.New("etcd at [10.0.0.5:2379]: connection refused"), errs.EUNAVAILABLE, "the database (etcd) cannot be reached; try again")
	for range 3 {
		d.log(logger, r, err)
	}
	if n := strings.Count(buf.String(), "\n"); n != 1 || !strings.Contains(buf.String(), "10.0.0.5:2379") {
		t.Fatalf("3 failures at once logged %d lines, want 1 with the cause:\n%s", n, buf.String())
	}
	d.last = d.last.Add(-downLogEvery - time.Second)
	d.log(logger, r, err)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "not_logged_since_last=2") {
		t.Errorf("after %s: %q, want a second line counting the 2 not logged", downLogEvery, lines)
	}
}
