package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/internal/storetest"
)

// TestTokenCommand: "vmpooler token list|revoke" on a stopped pooler's
// database lists tokens by id (never the token) and revokes by id, by
// whole token or by user; a running pooler's file is refused.
func TestTokenCommand(t *testing.T) {
	db, cfg := minimalConfig(t)
	st := storetest.MustOpen(t, storetest.Path(db))
	a, err := auth.New(&auth.Config{Provider: auth.ProviderDummy}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	var toks []string
	for _, u := range []string{"alice", "bob", "bob", "carol"} {
		tok, err := a.CreateToken(u)
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok.Token)
	}
	if err := run(context.Background(), []string{"token", "list", "-config", cfg}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "stop it first") {
		t.Errorf("list while the file is open: %v, want in use, stop it first", err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := func(args ...string) string {
		t.Helper()
		var out bytes.Buffer
		if err := run(context.Background(), append([]string{"token"}, args...), &out, io.Discard); err != nil {
			t.Fatalf("token %v: %v", args, err)
		}
		return out.String()
	}
	list := cmd("list", "-config", cfg)
	for i, u := range []string{"alice", "bob", "bob", "carol"} {
		if !strings.Contains(list, auth.TokenID(toks[i])+"  "+u) && !strings.Contains(list, auth.TokenID(toks[i])) {
			t.Errorf("list lacks %s's token id %s:\n%s", u, auth.TokenID(toks[i]), list)
		}
		if strings.Contains(list, toks[i]) {
			t.Errorf("list shows a whole token:\n%s", list)
		}
	}
	cmd("revoke", "-config", cfg, auth.TokenID(toks[0]))
	cmd("revoke", "-config", cfg, "-user", "bob")
	cmd("revoke", "-config", cfg, toks[3])
	if left := cmd("list", "-config", cfg); strings.Count(left, "\n") != 1 {
		t.Errorf("after revoking all: %q, want the header only", left)
	}
	if err := run(context.Background(), []string{"token", "revoke", "-config", cfg, "abcdef"}, io.Discard, io.Discard); err == nil {
		t.Error("revoking an unknown id: no error")
	}
}
