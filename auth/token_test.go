package auth

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/internal/storetest"
	"github.com/vmpooler/vmpooler/store"
)

// MustNewTokenAuth returns a dummy-provider Auth over a fresh store, both on clk.
func MustNewTokenAuth(tb testing.TB, clk *clocktest.Clock) (*Auth, *store.Store) {
	tb.Helper()
	st := storetest.MustOpen(tb, storetest.Now(clk.Now))
	a, err := New(&Config{Provider: "dummy"}, st, nil)
	if err != nil {
		tb.Fatal(err)
	}
	a.Now = clk.Now
	return a, st
}

func TestNewToken(t *testing.T) {
	const n = 10000
	seen := make(map[string]bool, n)
	firsts := make(map[byte]bool)
	for range n {
		tok := newToken()
		if len(tok) != TokenLen {
			t.Fatalf("token %q has length %d, want %d", tok, len(tok), TokenLen)
		}
		if !strings.ContainsRune(tokenFirst, rune(tok[0])) {
			t.Fatalf("token %q starts outside a..y", tok)
		}
		for _, c := range tok[1:] {
			if !strings.ContainsRune(tokenRest, c) {
				t.Fatalf("token %q has %q outside [a-z0-9]", tok, c)
			}
		}
		if !wellFormed(tok) {
			t.Fatalf("wellFormed(%q) = false", tok)
		}
		if seen[tok] {
			t.Fatalf("token %q issued twice", tok)
		}
		seen[tok] = true
		firsts[tok[0]] = true
	}
	// Every one of the 25 first letters turns up in 10,000 draws (missing
	// one has probability about 25·(24/25)^10000, i.e. never).
	if len(firsts) != len(tokenFirst) {
		t.Fatalf("first letters seen: %d, want %d", len(firsts), len(tokenFirst))
	}
}

func TestWellFormed(t *testing.T) {
	for _, s := range []string{
		"",
		"utpg2i2xswor6h8ttjhu3d47z53yy47",   // 31
		"utpg2i2xswor6h8ttjhu3d47z53yy47yy", // 33
		"ztpg2i2xswor6h8ttjhu3d47z53yy47y",  // z first
		"0tpg2i2xswor6h8ttjhu3d47z53yy47y",  // digit first
		"Utpg2i2xswor6h8ttjhu3d47z53yy47y",  // upper case
		"utpg2i2xswor6h8ttjhu3d47z53yy47-",
		"utpg2i2xswor6h8ttjhu3d47z53yy4\u00e9",
	} {
		if wellFormed(s) {
			t.Errorf("wellFormed(%q) = true", s)
		}
	}
	if !wellFormed("utpg2i2xswor6h8ttjhu3d47z53yy47y") {
		t.Error("the seed's token is not well formed")
	}
}

func TestTokenRoundTrip(t *testing.T) {
	clk := clocktest.New(time.Date(2015, 4, 28, 19, 17, 47, 0, time.FixedZone("", -7*3600)))
	a, _ := MustNewTokenAuth(t, clk)

	t1, err := a.CreateToken("jdoe")
	if err != nil {
		t.Fatal(err)
	}
	if t1.User != "jdoe" || !t1.Created.Equal(clk.Now()) || !wellFormed(t1.Token) {
		t.Fatalf("CreateToken = %+v", t1)
	}
	clk.Advance(time.Second)
	t2, err := a.CreateToken("jdoe")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateToken("someone"); err != nil {
		t.Fatal(err)
	}

	got, err := a.Validate(t1.Token)
	if err != nil {
		t.Fatal(err)
	}
	if got.Token != t1.Token || got.User != "jdoe" || !got.Created.Equal(t1.Created) {
		t.Fatalf("Validate = %+v, want %+v", got, t1)
	}

	list, err := a.Tokens("jdoe")
	if err != nil {
		t.Fatal(err)
	}
	if names := tokenNames(list); !slices.Equal(names, []string{t1.Token, t2.Token}) {
		t.Fatalf("Tokens(jdoe) = %q, want %q (oldest first)", names, []string{t1.Token, t2.Token})
	}
	if list, err := a.Tokens("nobody"); err != nil || len(list) != 0 {
		t.Fatalf("Tokens(nobody) = %v, %v", list, err)
	}

	if err := a.DeleteToken(t1.Token, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Validate(t1.Token); errs.ErrorCode(err) != errs.EUNAUTHORIZED {
		t.Fatalf("Validate(deleted) = %v, want %s", err, errs.EUNAUTHORIZED)
	}
	if err := a.DeleteToken(t1.Token, ""); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Fatalf("DeleteToken(deleted) = %v, want %s", err, errs.ENOTFOUND)
	}
	if list, _ := a.Tokens("jdoe"); !slices.Equal(tokenNames(list), []string{t2.Token}) {
		t.Fatalf("Tokens(jdoe) after delete = %q", tokenNames(list))
	}
}

func TestTokenErrors(t *testing.T) {
	clk := clocktest.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	a, _ := MustNewTokenAuth(t, clk)
	for _, tok := range []string{"", "short", "utpg2i2xswor6h8ttjhu3d47z53yy47y", "ZZZZ2i2xswor6h8ttjhu3d47z53yy47y"} {
		_, err := a.Validate(tok)
		if errs.ErrorCode(err) != errs.EUNAUTHORIZED {
			t.Errorf("Validate(%q) = %v, want %s", tok, err, errs.EUNAUTHORIZED)
		}
		if tok != "" && err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("Validate error %q shows the token", err)
		}
		if err := a.DeleteToken(tok, ""); errs.ErrorCode(err) != errs.ENOTFOUND {
			t.Errorf("DeleteToken(%q) = %v, want %s", tok, err, errs.ENOTFOUND)
		}
	}
	if _, err := a.CreateToken(""); errs.ErrorCode(err) != errs.EINVALID {
		t.Errorf("CreateToken(\"\") = %v, want %s", err, errs.EINVALID)
	}
}

func TestValidateTouchEvery(t *testing.T) {
	clk := clocktest.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	a, st := MustNewTokenAuth(t, clk)
	t0 := clk.Now()
	tok, err := a.CreateToken("jdoe")
	if err != nil {
		t.Fatal(err)
	}
	stored := func() time.Time {
		t.Helper()
		got, err := st.GetToken(tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		return got.LastUsed
	}
	validate := func() store.Token {
		t.Helper()
		got, err := a.Validate(tok.Token)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if !stored().IsZero() {
		t.Fatal("new token already has LastUsed")
	}

	// First use: written at once.
	if got := validate(); !got.LastUsed.Equal(t0) {
		t.Fatalf("first Validate LastUsed = %v, want %v", got.LastUsed, t0)
	}
	if got := stored(); !got.Equal(t0) {
		t.Fatalf("stored LastUsed after first use = %v, want %v", got, t0)
	}

	// Within TouchEvery (default 1m): read only.
	clk.Advance(59 * time.Second)
	if got := validate(); !got.LastUsed.Equal(t0) {
		t.Fatalf("Validate at +59s LastUsed = %v, want %v", got.LastUsed, t0)
	}
	if got := stored(); !got.Equal(t0) {
		t.Fatalf("stored LastUsed at +59s = %v, want %v (no write)", got, t0)
	}

	// Once TouchEvery has passed: written again.
	clk.Advance(time.Second)
	t1 := clk.Now()
	if got := validate(); !got.LastUsed.Equal(t1) {
		t.Fatalf("Validate at +60s LastUsed = %v, want %v", got.LastUsed, t1)
	}
	if got := stored(); !got.Equal(t1) {
		t.Fatalf("stored LastUsed at +60s = %v, want %v", got, t1)
	}

	// A new process (fresh Auth on the same store) trusts the stored LastUsed.
	b, err := New(&Config{Provider: "dummy"}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	b.Now, b.TouchEvery = clk.Now, 10*time.Minute
	clk.Advance(5 * time.Minute)
	if _, err := b.Validate(tok.Token); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !got.Equal(t1) {
		t.Fatalf("stored LastUsed after restart within TouchEvery = %v, want %v", got, t1)
	}
	clk.Advance(5 * time.Minute)
	if _, err := b.Validate(tok.Token); err != nil {
		t.Fatal(err)
	}
	if got := stored(); !got.Equal(clk.Now()) {
		t.Fatalf("stored LastUsed after restart past TouchEvery = %v, want %v", got, clk.Now())
	}
}

func TestTokensWithoutStore(t *testing.T) {
	a, _ := MustNew(t, nil)
	if _, err := a.CreateToken("jdoe"); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Fatalf("CreateToken without a store = %v", err)
	}
	if _, err := a.Validate(newToken()); errs.ErrorCode(err) != errs.ENOTFOUND {
		t.Fatalf("Validate without a store = %v", err)
	}
}

func tokenNames(ts []store.Token) []string {
	var names []string
	for _, t := range ts {
		names = append(names, t.Token)
	}
	return names
}

func BenchmarkValidate(b *testing.B) {
	clk := clocktest.New(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	a, _ := MustNewTokenAuth(b, clk)
	tok, err := a.CreateToken("jdoe")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Validate(tok.Token); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewToken(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		newToken()
	}
}

// TestTokenOfRemovedUser: a token stops working once its user is removed
// from the htpasswd file, and works again if the user comes back.
func TestTokenOfRemovedUser(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	alice, bob := hashLine(t, "alice", "wonderland"), hashLine(t, "bob", "builder")
	writeFile(t, path, alice+bob, t0)
	clk := clocktest.New(t0)
	a, err := New(&Config{Provider: "htpasswd", File: path, Admins: []string{"alice"}}, storetest.MustOpen(t, storetest.Now(clk.Now)), nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Now = clk.Now
	tok, err := a.CreateToken("bob")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Validate(tok.Token); err != nil {
		t.Fatalf("bob's token while bob exists: %v", err)
	}
	writeFile(t, path, alice, t0.Add(time.Second))
	if _, err := a.Validate(tok.Token); errs.ErrorCode(err) != errs.EUNAUTHORIZED {
		t.Errorf("bob's token after removing bob: %v, want EUNAUTHORIZED", err)
	}
	writeFile(t, path, alice+bob, t0.Add(2*time.Second))
	if _, err := a.Validate(tok.Token); err != nil {
		t.Errorf("bob's token after adding him back: %v", err)
	}
	if !a.IsAdmin("alice") || a.IsAdmin("bob") || a.IsAdmin("") {
		t.Error("IsAdmin: want alice only")
	}
}
