package httpapi

import (
	"net/http"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

// rubyTime is the token record time format of the seed (Ruby's Time#to_s).
const rubyTime = "2006-01-02 15:04:05 -0700"

func formatRuby(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format(rubyTime)
}

var errNoAuth = errs.Errorf(errs.ENOTFOUND, "authentication is not configured")

// tokens wraps a token route: 404 when authentication is off.
func (s *server) tokens(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		if !s.auth.Enabled() {
			return errNoAuth
		}
		return h(w, r, c)
	}
}

// basicHandler is a handler that runs for a user who passed HTTP Basic.
type basicHandler func(w http.ResponseWriter, r *http.Request, c call, user string) error

// basic wraps a token route that needs HTTP Basic credentials (401 otherwise).
func (s *server) basic(h basicHandler) handler {
	return s.tokens(func(w http.ResponseWriter, r *http.Request, c call) error {
		user, password, ok := r.BasicAuth()
		if !ok {
			return errs.Errorf(errs.EUNAUTHORIZED, "HTTP Basic credentials are required")
		}
		if err := s.loginThrottled(w, r, user); err != nil {
			return err
		}
		if err := s.auth.Login(user, password); err != nil {
			if errs.ErrorCode(err) == errs.EUNAUTHORIZED {
				s.audit(r, "login_failed", user, "")
				s.loginFailed(r, user)
			}
			return err
		}
		return h(w, r, c, user)
	})
}

// caller resolves the X-AUTH-TOKEN header. With strict, a token that is
// given but invalid is EUNAUTHORIZED; otherwise it counts as no token (the
// service then asks for one where the rules need it).
func (s *server) caller(r *http.Request, strict bool) (pool.Caller, error) {
	if !s.auth.Enabled() {
		return pool.Caller{}, nil
	}
	c := pool.Caller{Auth: true}
	tok := r.Header.Get("X-AUTH-TOKEN")
	if tok == "" {
		return c, nil
	}
	t, err := s.auth.Validate(tok)
	if errs.ErrorCode(err) == errs.EUNAUTHORIZED {
		s.audit(r, "token_refused", "", tok)
	}
	if errs.ErrorCode(err) == errs.EUNAUTHORIZED && !strict {
		return c, nil
	} else if err != nil {
		return c, err
	}
	c.User = t.User
	return c, nil
}

// handleTokenList answers GET /token: the caller's tokens, 404 if none (as upstream).
func (s *server) handleTokenList(w http.ResponseWriter, r *http.Request, c call, user string) error {
	toks, err := s.auth.Tokens(user)
	if err != nil {
		return err
	} else if len(toks) == 0 {
		return errs.Errorf(errs.ENOTFOUND, "user %s has no tokens", user)
	}
	out := obj{{"ok", true}}
	for _, t := range toks {
		last := "never"
		if !t.LastUsed.IsZero() {
			last = formatRuby(t.LastUsed)
		}
		info := obj{{"created", formatRuby(t.Created)}, {"last", last}}
		if e := s.auth.Expires(t); !e.IsZero() {
			info = append(info, kv{"expires", formatRuby(e)})
		}
		out = append(out, kv{t.Token, info})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleTokenCreate answers POST /token.
func (s *server) handleTokenCreate(w http.ResponseWriter, r *http.Request, c call, user string) error {
	t, err := s.auth.CreateToken(user)
	if err != nil {
		return err
	}
	s.audit(r, "token_create", user, t.Token)
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {"token", t.Token}})
	return nil
}

// pathToken looks up the token the path names; an unknown one is an error
// of code unknown ("unknown token").
func (s *server) pathToken(c call, unknown string) (string, store.Token, error) {
	name := c.ps.ByName("token")
	t, err := s.st.GetToken(name)
	if errs.ErrorCode(err) == errs.ENOTFOUND {
		return name, t, errs.Errorf(unknown, "unknown token")
	}
	return name, t, err
}

// handleTokenGet answers GET /token/<token>, open as in the seed: the owner,
// times (created, and timestamp as the seed writes it) and running VMs.
// Looking a token up is not a use of it, so LastUsed is left alone.
func (s *server) handleTokenGet(w http.ResponseWriter, r *http.Request, c call) error {
	name, t, err := s.pathToken(c, errs.ENOTFOUND)
	if err != nil {
		return err
	}
	info := obj{{"user", t.User}, {"created", formatRuby(t.Created)}, {"timestamp", formatRuby(t.Created)}}
	if !t.LastUsed.IsZero() {
		info = append(info, kv{"last", formatRuby(t.LastUsed)})
	}
	if e := s.auth.Expires(t); !e.IsZero() {
		info = append(info, kv{"expires", formatRuby(e)})
	}
	hosts, err := s.svc.RunningByUser(t.User)
	if err != nil {
		return err
	}
	if len(hosts) > 0 {
		names := make([]string, len(hosts))
		for i, h := range hosts {
			names[i] = s.hostname(c.v, h.Hostname, h.Pool)
		}
		info = append(info, kv{"vms", obj{{"running", names}}})
	}
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {name, info}})
	return nil
}

// handleTokenDelete answers DELETE /token/<token>. An unknown token is 401
// as upstream; another user's token is 403 unless the caller is in
// [auth] admins.
func (s *server) handleTokenDelete(w http.ResponseWriter, r *http.Request, c call, user string) error {
	name, t, err := s.pathToken(c, errs.EUNAUTHORIZED)
	if err != nil {
		return err
	}
	owner := user // the store checks it in the deleting transaction
	if s.auth.IsAdmin(user) {
		owner = ""
	}
	if err := s.auth.DeleteToken(name, owner); errs.ErrorCode(err) == errs.ENOTFOUND {
		return errs.Errorf(errs.EUNAUTHORIZED, "unknown token")
	} else if err != nil {
		return err
	}
	s.audit(r, "token_delete", user, name, "owner", t.User)
	writeJSON(w, http.StatusOK, obj{{"ok", true}})
	return nil
}
