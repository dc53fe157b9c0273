package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vmpooler/vmpooler/auth"
	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// runToken is "vmpooler token list|revoke": token administration on the
// database file while the pooler is stopped (a running pooler holds the
// file's lock; then use DELETE /token/<token> as an [auth] admin).
//
//	vmpooler token list   -config F [-user U]
//	vmpooler token revoke -config F (-user U | <token or token id>...)
//
// list prints each token's id (auth.TokenID), user, creation and last use,
// never the token itself. revoke takes tokens or their ids, or -user for
// all of a user's tokens (a user removed from the htpasswd file).
func runToken(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "revoke") {
		return errors.New("usage: vmpooler token list|revoke -config F [-user U] [token or id...]")
	}
	sub, args := args[0], args[1:]
	var user string
	fs := flag.NewFlagSet("vmpooler token "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "vmpooler.toml", "configuration file (TOML)")
	fs.StringVar(&user, "user", "", "only this user's tokens")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := LoadConfig(*path)
	if err != nil {
		return err
	}
	st, err := openStopped(cfg, "stop it first, or use DELETE /token/<token> as an [auth] admin")
	if err != nil {
		return err
	}
	defer st.Close()
	toks, err := st.AllTokens()
	if err != nil {
		return err
	}
	if sub == "list" {
		return listTokens(stdout, toks, user)
	}
	return revokeTokens(stdout, st, toks, user, fs.Args())
}

func listTokens(w io.Writer, toks []store.Token, user string) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tCREATED\tLAST USED")
	for _, t := range toks {
		if user != "" && t.User != user {
			continue
		}
		last := "never"
		if !t.LastUsed.IsZero() {
			last = t.LastUsed.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", auth.TokenID(t.Token), t.User, t.Created.UTC().Format(time.RFC3339), last)
	}
	return tw.Flush()
}

// revokeTokens deletes the tokens of user (when set) and those named by
// token or id; an id matching several tokens is refused.
func revokeTokens(w io.Writer, st *store.Store, toks []store.Token, user string, names []string) error {
	if user == "" && len(names) == 0 {
		return errors.New("revoke: name tokens (or their ids), or give -user")
	}
	var doomed []store.Token
	for _, t := range toks {
		if user != "" && t.User == user {
			doomed = append(doomed, t)
		}
	}
	for _, n := range names {
		var match []store.Token
		for _, t := range toks {
			if t.Token == n || (len(n) >= 6 && strings.HasPrefix(auth.TokenID(t.Token), strings.ToLower(n))) {
				match = append(match, t)
			}
		}
		switch len(match) {
		case 0:
			return fmt.Errorf("revoke: no token %q", n)
		case 1:
			doomed = append(doomed, match[0])
		default:
			return fmt.Errorf("revoke: %q matches %d tokens; give the whole token", n, len(match))
		}
	}
	done := map[string]bool{}
	for _, t := range doomed {
		if done[t.Token] {
			continue
		}
		if err := st.DeleteToken(t.Token, ""); err != nil && errs.ErrorCode(err) != errs.ENOTFOUND {
			return err
		}
		done[t.Token] = true
		fmt.Fprintf(w, "revoked %s (user %s)\n", auth.TokenID(t.Token), t.User)
	}
	return nil
}

// openStopped opens the configured database for a command that writes it
// while the pooler is stopped; when a pooler holds it, the error adds hint.
func openStopped(cfg *Config, hint string) (*store.Store, error) {
	st, err := openDatabase(cfg, nil)
	if errors.Is(err, store.ErrInUse) {
		return nil, fmt.Errorf("%w: %s", err, hint)
	}
	return st, err
}
