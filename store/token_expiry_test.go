package store

import (
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
)

func TestPurgeTokens(t *testing.T) {
	s := MustOpenStore(t)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, tok := range []string{"aold0000000000000000000000000000", "bnew0000000000000000000000000000"} {
		if err := s.CreateToken(Token{Token: tok, User: "alice", Created: t0.Add(time.Duration(i) * 48 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.PurgeTokens(t0.Add(24 * time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("purged %d, %v; want 1", n, err)
	}
	if _, err := s.GetToken("aold0000000000000000000000000000"); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Errorf("old token: %v", err)
	}
	ts, _ := s.TokensByUser("alice")
	if len(ts) != 1 || ts[0].Token != "bnew0000000000000000000000000000" {
		t.Errorf("left %+v", ts)
	}
}
