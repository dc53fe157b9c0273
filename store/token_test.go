package store

import (
	"bytes"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

func TestTokens(t *testing.T) {
	clk := newTestClock()
	s := MustOpenStoreAt(t, t.TempDir()+"/x.db", clk)
	for _, tok := range []string{"tok-b", "tok-a", "tok-c"} {
		if err := s.CreateToken(Token{Token: tok, User: "alice"}); err != nil {
			t.Fatal(err)
		}
	}
	s.CreateToken(Token{Token: "tok-x", User: "alic"}) // a prefix of alice
	mustCode(t, s.CreateToken(Token{Token: "tok-a", User: "bob"}), errs.ECONFLICT)
	mustCode(t, s.CreateToken(Token{Token: "", User: "bob"}), errs.EINVALID)
	mustCode(t, s.CreateToken(Token{Token: "t", User: ""}), errs.EINVALID)
	mustCode(t, s.CreateToken(Token{Token: "t", User: "a\x00b"}), errs.EINVALID)

	got, err := s.TokensByUser("alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Token != "tok-b" || got[1].Token != "tok-a" || got[2].Token != "tok-c" {
		t.Errorf("by user: got %+v, want oldest first", got)
	}
	tok, err := s.GetToken("tok-a")
	if err != nil || tok.User != "alice" || tok.Created.IsZero() || !tok.LastUsed.IsZero() {
		t.Errorf("get: %+v, %v", tok, err)
	}
	clk.Advance(time.Hour)
	if err := s.TouchToken("tok-a"); err != nil {
		t.Fatal(err)
	}
	if tok2, _ := s.GetToken("tok-a"); !tok2.LastUsed.After(tok.Created) {
		t.Errorf("touch: %+v", tok2)
	}
	if err := s.DeleteToken("tok-a", ""); err != nil {
		t.Fatal(err)
	}
	_, err = s.GetToken("tok-a")
	mustCode(t, err, errs.ENOTFOUND)
	mustCode(t, s.DeleteToken("tok-a", ""), errs.ENOTFOUND)
	mustCode(t, s.TouchToken("tok-a"), errs.ENOTFOUND)
	if got, _ := s.TokensByUser("alice"); len(got) != 2 {
		t.Errorf("after delete: %+v", got)
	}
	if got, _ := s.TokensByUser("nobody"); len(got) != 0 {
		t.Errorf("nobody: %+v", got)
	}

	t.Run("KeyedByHash", func(t *testing.T) {
		s.view(func(tx kv.Tx) error {
			return tx.Scan(bucketTokens, nil, nil, func(k, _ []byte) (bool, error) {
				if bytes.Contains(k, []byte("tok-")) || len(k) != 32 {
					t.Errorf("token key %q is not a sha256", k)
				}
				return true, nil
			})
		})
	})
}

func TestOverrides(t *testing.T) {
	s := MustOpenStore(t)
	size := 5
	if err := s.PutOverride("p", Override{Size: &size}); err != nil {
		t.Fatal(err)
	}
	s.PutOverride("q", Override{Template: "t", CloneTarget: "c"})
	got, _ := s.Overrides()
	if len(got) != 2 || *got["p"].Size != 5 || got["q"].Template != "t" || got["q"].CloneTarget != "c" {
		t.Errorf("got %+v", got)
	}
	s.PutOverride("p", Override{})
	if got, _ := s.Overrides(); len(got) != 1 {
		t.Errorf("after removal: %+v", got)
	}
	neg := -1
	mustCode(t, s.PutOverride("p", Override{Size: &neg}), errs.EINVALID)
	mustCode(t, s.PutOverride("", Override{Template: "t"}), errs.EINVALID)
}
