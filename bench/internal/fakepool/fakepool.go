// Package fakepool is a tiny in-memory imitation of vmpooler's v1 VM API
// (checkout, get, delete, status, pool list) for the bench tools' tests. It
// can be told to misbehave so the checkers have something to catch.
package fakepool

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
)

// Server is the fake API. Set the fields before serving.
type Server struct {
	Pools map[string]int // pool → size; each pool starts full and refills at each checkout
	// Bugs to inject.
	Reuse  bool // hand out hostnames again after they are returned
	Forget bool // DELETE of a running VM answers 404
	// Save, if set, is called with the new state after every change and
	// before the answer is written (a crash-safe fake persists it here).
	Save func(State) error

	mu      sync.Mutex
	ready   map[string][]string
	running map[string]string // host → pool
	next    int
}

// New returns a server with the given pool sizes.
func New(pools map[string]int) *Server {
	s := &Server{Pools: pools, ready: map[string][]string{}, running: map[string]string{}}
	for p, n := range pools {
		for range n {
			s.ready[p] = append(s.ready[p], s.name())
		}
	}
	return s
}

// State is the fake's whole state, for persisting across restarts.
type State struct {
	Ready   map[string][]string `json:"ready"`
	Running map[string]string   `json:"running"`
	Next    int                 `json:"next"`
}

// Restore replaces the state (call before serving).
func (s *Server) Restore(st State) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ready, s.running, s.next = st.Ready, st.Running, st.Next
	if s.ready == nil {
		s.ready = map[string][]string{}
	}
	if s.running == nil {
		s.running = map[string]string{}
	}
}

// Live returns every hostname the fake knows (ready or running), unsorted.
func (s *Server) Live() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, hs := range s.ready {
		out = append(out, hs...)
	}
	for h := range s.running {
		out = append(out, h)
	}
	return out
}

// save persists the state; the caller holds mu. It reports whether the
// change may be acknowledged.
func (s *Server) save(w http.ResponseWriter) bool {
	if s.Save == nil {
		return true
	}
	if err := s.Save(State{Ready: s.ready, Running: s.running, Next: s.next}); err != nil {
		writeJSON(w, 500, map[string]any{"ok": false, "error": err.Error()})
		return false
	}
	return true
}

func (s *Server) name() string { s.next++; return fmt.Sprintf("h%014d", s.next) }

// Running returns the number of VMs checked out now.
func (s *Server) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.running)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// ServeHTTP implements the routes under /api/v1.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest, ok := strings.CutPrefix(r.URL.Path, "/api/v1/")
	if !ok {
		writeJSON(w, 404, map[string]any{"ok": false})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case rest == "status" && r.Method == http.MethodGet:
		pools := map[string]any{}
		for p, size := range s.Pools {
			pools[p] = map[string]int{"ready": len(s.ready[p]), "pending": 0, "running": s.count(p), "max": size}
		}
		writeJSON(w, 200, map[string]any{"status": map[string]any{"ok": true}, "pools": pools})
	case rest == "vm" && r.Method == http.MethodGet:
		names := []string{}
		for p := range s.Pools {
			names = append(names, p)
		}
		writeJSON(w, 200, names)
	case strings.HasPrefix(rest, "vm/"):
		s.vm(w, r, strings.TrimPrefix(rest, "vm/"))
	default:
		writeJSON(w, 404, map[string]any{"ok": false})
	}
}

func (s *Server) count(pool string) int {
	n := 0
	for _, p := range s.running {
		if p == pool {
			n++
		}
	}
	return n
}

func (s *Server) vm(w http.ResponseWriter, r *http.Request, name string) {
	switch r.Method {
	case http.MethodPost:
		if _, ok := s.Pools[name]; !ok {
			writeJSON(w, 404, map[string]any{"ok": false})
			return
		}
		if len(s.ready[name]) == 0 {
			writeJSON(w, 503, map[string]any{"ok": false})
			return
		}
		h := s.ready[name][0]
		s.ready[name] = s.ready[name][1:]
		s.running[h] = name
		if !s.Reuse {
			s.ready[name] = append(s.ready[name], s.name()) // refill at once, as a manager would
		}
		if !s.save(w) {
			return
		}
		writeJSON(w, 200, map[string]any{"ok": true, "domain": "example.com", name: map[string]any{"hostname": h}})
	case http.MethodGet:
		if _, ok := s.running[name]; !ok {
			writeJSON(w, 404, map[string]any{"ok": false})
			return
		}
		writeJSON(w, 200, map[string]any{"ok": true, name: map[string]any{"state": "running"}})
	case http.MethodDelete:
		p, ok := s.running[name]
		if !ok || s.Forget {
			writeJSON(w, 404, map[string]any{"ok": false})
			return
		}
		delete(s.running, name)
		if s.Reuse {
			s.ready[p] = append(s.ready[p], name)
		}
		if !s.save(w) {
			return
		}
		writeJSON(w, 200, map[string]any{"ok": true})
	default:
		writeJSON(w, 405, map[string]any{"ok": false})
	}
}
