package httpapi

import (
	"net/http"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
)

// operator resolves the caller of an operator route (/config/* writes,
// /poolreset): a valid token as for any write, and, when [auth] admins
// lists anyone, a token of one of them (403 otherwise). Without admins
// every token may, as upstream (main warns at start).
func (s *server) operator(r *http.Request) (pool.Caller, error) {
	c, err := s.writer(r)
	if err != nil {
		return c, err
	}
	if c.Auth && s.auth.AdminsSet() && !s.auth.IsAdmin(c.User) {
		s.auditCaller(r, "operator_refused", c, "route", r.URL.Path)
		return c, errs.Errorf(errs.EFORBIDDEN, "only administrators ([auth] admins) may call %s %s; %s is not one", r.Method, r.URL.Path, c.User)
	}
	return c, nil
}

// privateKeys are the configuration keys /config and /full_config show
// only to administrators: file paths and the listen address. (Secrets
// are shown to nobody; see configMember.)
var privateKeys = map[string]bool{
	"listen": true, "database": true, "backup_dir": true, "file": true, "ca_file": true,
	"password_env": true,
}

// seesPrivate reports whether the caller of r may see privateKeys: with
// [auth] admins set, only a valid admin token; without it, everyone, as
// before admins existed.
func (s *server) seesPrivate(r *http.Request) bool {
	if !s.auth.AdminsSet() {
		return true
	}
	c, err := s.caller(r, false)
	return err == nil && s.auth.IsAdmin(c.User)
}

// withoutPrivate returns v (a configValue result) without privateKeys, at
// any depth.
func withoutPrivate(v any) any {
	switch v := v.(type) {
	case obj:
		out := make(obj, 0, len(v))
		for _, m := range v {
			if privateKeys[m.k] {
				continue
			}
			out = append(out, kv{m.k, withoutPrivate(m.v)})
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = withoutPrivate(e)
		}
		return out
	}
	return v
}
