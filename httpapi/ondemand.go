package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

// messages wraps a handler whose errors also carry upstream's "message"
// key (ondemand and configuration routes answer errors with it).
func (s *server) messages(h handler) handler {
	return func(w http.ResponseWriter, r *http.Request, c call) error {
		err := h(w, r, c)
		if err != nil {
			err = errs.WithDetails(err, errs.Detail{Key: "message", Value: errs.ErrorMessage(err)})
		}
		return err
	}
}

// writer resolves the caller of a write that needs a token when auth is on
// (401 without one), before the body is read.
func (s *server) writer(r *http.Request) (pool.Caller, error) {
	c, err := s.caller(r, true)
	if err != nil {
		return c, err
	} else if c.Auth && c.User == "" {
		return c, errs.Errorf(errs.EUNAUTHORIZED, "a token is required")
	}
	return c, nil
}

// handleOndemandBody answers POST /ondemandvm {"<pool>":"<n>",...,"request_id":"<id>"}.
func (s *server) handleOndemandBody(w http.ResponseWriter, r *http.Request, c call) error {
	caller, err := s.writer(r)
	if err != nil {
		return err
	}
	var body map[string]any
	if err := readJSON(w, r, &body); err != nil {
		return err
	}
	id := ""
	if v, ok := body["request_id"]; ok {
		if id, ok = v.(string); !ok || id == "" {
			return errs.Errorf(errs.EINVALID, "request_id must be a non-empty string")
		}
		delete(body, "request_id")
	}
	wants, err := parseCheckoutBody(body)
	if err != nil {
		return err
	}
	return s.ondemand(w, r, c, wants, id, caller)
}

// handleOndemandPath answers POST /ondemandvm/<pool>[+<pool>...].
func (s *server) handleOndemandPath(w http.ResponseWriter, r *http.Request, c call) error {
	caller, err := s.writer(r)
	if err != nil {
		return err
	}
	wants, err := parsePoolList(c.ps.ByName("name"))
	if err != nil {
		return err
	}
	return s.ondemand(w, r, c, wants, "", caller)
}

// ondemand records the request and answers 201 {"ok":true,"request_id":id}
// (v1 adds "domain").
func (s *server) ondemand(w http.ResponseWriter, r *http.Request, c call, wants []pool.Want, id string, caller pool.Caller) error {
	id, err := s.svc.RequestOndemand(wants, id, caller)
	if err != nil {
		return err
	}
	s.auditCaller(r, "ondemand_request", caller, "request_id", id, "pools", wantList(wants))
	out := obj{{"ok", true}, {"request_id", id}}
	if d := s.svc.Current().Domain; !c.v.fqdn() && d != "" {
		out = append(out, kv{"domain", d})
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// handleOndemandGet answers GET /ondemandvm/<id>: 202 with ready/pending
// counts (strings, as upstream) per requested name while pending; 200 with
// the hostnames when filled; 200 with ready false and a message when it
// failed or was deleted.
func (s *server) handleOndemandGet(w http.ResponseWriter, r *http.Request, c call) error {
	var wait time.Duration
	if r.URL.Query().Has("wait") {
		var err error
		if wait, err = s.checkoutWait(r); err != nil {
			return err
		}
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(wait + 30*time.Second))
	}
	v, err := s.svc.OndemandWait(r.Context(), c.ps.ByName("name"), wait)
	if r.Context().Err() != nil {
		return nil // the client went away
	} else if err != nil {
		return err
	}
	out := obj{{"ok", true}, {"request_id", v.ID}, {"ready", v.State == store.RequestReady}}
	switch v.State {
	case store.RequestPending:
		for _, n := range v.Names {
			out = append(out, kv{n.Name, obj{{"ready", strconv.Itoa(len(n.Hosts))}, {"pending", strconv.Itoa(n.Wanted - len(n.Hosts))}}})
		}
		writeJSON(w, http.StatusAccepted, out)
		return nil
	case store.RequestReady:
		domain := ""
		for _, n := range v.Names {
			names := make([]string, len(n.Hosts))
			for i, h := range n.Hosts {
				names[i] = s.hostname(c.v, h.Name, h.Pool)
				if domain == "" {
					domain = s.svc.Domain(h.Pool)
				}
			}
			out = append(out, kv{n.Name, obj{{"hostname", names}}})
		}
		if !c.v.fqdn() && domain != "" {
			out = append(out, kv{"domain", domain})
		}
	case store.RequestDeleted:
		out = append(out, kv{"message", "The request has been deleted"})
	default:
		ttl := s.svc.Current().OndemandRequestTTL
		out = append(out, kv{"message", "The request failed to provision instances within the configured ondemand_request_ttl '" + strconv.Itoa(ttl) + "'"})
		if v.Error != "" {
			out = append(out, kv{"reason", v.Error})
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleOndemandDelete answers DELETE /ondemandvm/<id>.
func (s *server) handleOndemandDelete(w http.ResponseWriter, r *http.Request, c call) error {
	caller, err := s.writer(r)
	if err != nil {
		return err
	}
	already, err := s.svc.DeleteOndemand(c.ps.ByName("name"), caller)
	if err != nil {
		return err
	}
	s.auditCaller(r, "ondemand_delete", caller, "request_id", c.ps.ByName("name"))
	out := obj{{"ok", true}}
	if already {
		out = append(out, kv{"message", "the request has already been deleted"})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}
