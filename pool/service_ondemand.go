package pool

import (
	"crypto/rand"
	"fmt"
	"strings"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// namesError is an error about some of the names a request gave (pools,
// aliases, templates), listed in a detail under key the way upstream does
// (bad_templates, not_configured, bad_pools).
func namesError(code, message, key string, names []string) error {
	return &errs.Error{Code: code, Message: message + ": " + strings.Join(names, ", "),
		Details: []errs.Detail{{Key: key, Value: names}}}
}

// MaxRequestIDLen bounds a caller-chosen ondemand request id.
const MaxRequestIDLen = 100

// needToken is the rule of every ondemand and configuration write:
// with auth on, a valid token is required (401).
func needToken(c Caller) error {
	if c.Auth && c.User == "" {
		return errs.Errorf(errs.EUNAUTHORIZED, "a token is required")
	}
	return nil
}

// RequestOndemand records an ondemand request for wants and returns its id:
// id when given (1..MaxRequestIDLen of A-Z a-z 0-9 . _ -), else a new
// UUID. The manager clones the VMs and hands them to the request. An alias
// spreads its count over its pools in turn.
//
// Errors: 401 without a token when auth is on; EINVALID for nothing
// requested, a bad count or id; ENOTFOUND for unknown names (listed under "bad_templates");
// EFORBIDDEN for more than max_ondemand_instances_per_request of one name
// or of one pool once aliases are resolved;
// ECONFLICT if the id exists.
func (s *Service) RequestOndemand(wants []Want, id string, c Caller) (string, error) {
	cur := s.state()
	if err := needToken(c); err != nil {
		return "", err
	} else if len(wants) == 0 {
		return "", errs.Errorf(errs.EINVALID, "no pool requested")
	}
	limit := cur.cfg.MaxOndemandPerRequest
	if err := cur.validOndemand(wants, limit); err != nil {
		return "", err
	}
	if id == "" {
		id = newUUID()
	} else if !validRequestID(id) {
		return "", errs.Errorf(errs.EINVALID, "request_id must be 1 to %d of A-Z a-z 0-9 . _ -", MaxRequestIDLen)
	}
	r := store.Request{ID: id, User: c.User, Quota: cur.quota(c.User)}
	if c.User != "" && cur.cfg.VMLifetimeAuth > 0 {
		r.Lifetime = cur.cfg.VMLifetimeAuth
	}
	r.Requested, r.Names = cur.spread(wants)
	// The limit is per pool: count after resolving aliases, or a pool and
	// two of its aliases get three times the limit of one pool.
	perPool := make(map[string]int)
	for _, pc := range r.Requested {
		if perPool[pc.Pool] += pc.Count; perPool[pc.Pool] > limit {
			return "", errs.Errorf(errs.EFORBIDDEN, "requested amount of instances exceeds the maximum %d (pool %s, aliases counted)", limit, pc.Pool)
		}
	}
	err := s.Store.CreateRequest(r)
	if errs.ErrorCode(err) == errs.ECONFLICT {
		return "", errs.Errorf(errs.ECONFLICT, "request_id '%s' has already been created", id)
	} else if err != nil {
		return "", err
	}
	s.Kick()
	return id, nil
}

// validOndemand checks the wants of an ondemand request: ENOTFOUND listing
// the unknown names, then EINVALID or EFORBIDDEN for a count below 1 or
// over limit.
func (cur *serviceState) validOndemand(wants []Want, limit int) error {
	var unknown []string
	for _, w := range wants {
		if _, ok := cur.aliases[w.Name]; !ok {
			unknown = append(unknown, w.Name)
		}
	}
	if len(unknown) > 0 {
		return namesError(errs.ENOTFOUND, "unknown pools or aliases", "bad_templates", unknown)
	}
	for _, w := range wants {
		if w.Count < 1 {
			return errs.Errorf(errs.EINVALID, "VM count must be at least 1")
		} else if w.Count > limit {
			return errs.Errorf(errs.EFORBIDDEN, "requested amount of instances exceeds the maximum %d", limit)
		}
	}
	return nil
}

// spread resolves wants to pools: an alias spreads its count over its
// pools in turn. names[i] is the name that asked for requested[i].
func (cur *serviceState) spread(wants []Want) (requested []store.PoolCount, names []string) {
	for _, w := range wants {
		cands := cur.aliases[w.Name]
		for i, p := range cands {
			n := w.Count / len(cands)
			if i < w.Count%len(cands) {
				n++
			}
			if n > 0 {
				requested = append(requested, store.PoolCount{Pool: p, Count: n})
				names = append(names, w.Name)
			}
		}
	}
	return requested, names
}

func validRequestID(id string) bool {
	return id != "" && len(id) <= MaxRequestIDLen && ValidChars(id, "._-")
}

// newUUID returns a random (version 4) UUID, as upstream's request ids.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// Host is a hostname and its pool (whose domain makes its FQDN).
type Host struct {
	Name, Pool string
}

// OndemandName is what one requested name (pool or alias) asked for and
// has been given so far.
type OndemandName struct {
	Name   string
	Wanted int
	Hosts  []Host
}

// OndemandView is an ondemand request as the API shows it: State is one of
// store.Request*, Names are in request order.
type OndemandView struct {
	ID    string
	State string
	Error string
	Names []OndemandName
}

// Ondemand returns a request by id. ENOTFOUND if unknown.
func (s *Service) Ondemand(id string) (OndemandView, error) {
	r, err := s.Store.GetRequest(id)
	if errs.ErrorCode(err) == errs.ENOTFOUND {
		return OndemandView{}, errs.Errorf(errs.ENOTFOUND, "no request found for request_id '%s'", id)
	} else if err != nil {
		return OndemandView{}, err
	}
	v := OndemandView{ID: r.ID, State: r.State, Error: r.Error}
	used := make(map[string]int) // pool → hosts dealt out so far
	for i, pc := range r.Requested {
		name := pc.Pool
		if i < len(r.Names) && r.Names[i] != "" {
			name = r.Names[i]
		}
		j := -1
		for k := range v.Names {
			if v.Names[k].Name == name {
				j = k
			}
		}
		if j < 0 {
			v.Names = append(v.Names, OndemandName{Name: name})
			j = len(v.Names) - 1
		}
		v.Names[j].Wanted += pc.Count
		hosts := r.Hosts[pc.Pool]
		from := min(used[pc.Pool], len(hosts))
		to := min(from+pc.Count, len(hosts))
		for _, h := range hosts[from:to] {
			v.Names[j].Hosts = append(v.Names[j].Hosts, Host{Name: h, Pool: pc.Pool})
		}
		used[pc.Pool] = to
	}
	return v, nil
}

// DeleteOndemand deletes a request; its delivered VMs are scheduled for
// destruction and the manager stops cloning for it. It reports whether the
// request was deleted already. 401 without a token when auth is on, 403 for
// another user's request, ENOTFOUND if unknown.
func (s *Service) DeleteOndemand(id string, c Caller) (already bool, err error) {
	if err := needToken(c); err != nil {
		return false, err
	}
	r, err := s.Store.GetRequest(id)
	if errs.ErrorCode(err) == errs.ENOTFOUND {
		return false, errs.Errorf(errs.ENOTFOUND, "no request found for request_id '%s'", id)
	} else if err != nil {
		return false, err
	}
	if c.Auth && r.User != "" && r.User != c.User {
		return false, errs.Errorf(errs.EFORBIDDEN, "request %s belongs to another user", id)
	}
	if r.State == store.RequestDeleted {
		return true, nil
	}
	if err := s.Store.FinishRequest(id, store.RequestDeleted, ""); err != nil {
		return false, err
	}
	s.Kick()
	return false, nil
}
