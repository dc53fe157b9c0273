package pool

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"
)

// TemplateFinder is implemented by providers that can tell whether a
// template exists (vsphere and FakeProvider). Service uses it to refuse a
// /config/pooltemplate override naming a missing template and to fill
// GET /config's template_ready.
type TemplateFinder interface {
	// TemplateExists reports whether the template at path (relative to
	// <datacenter>/vm/) exists; an error when it cannot tell.
	TemplateExists(ctx context.Context, datacenter, path string) (bool, error)
}

// templateCheckTimeout bounds one existence check, and templateCacheTTL
// how long its answer is reused (GET /config is open to everyone).
const (
	templateCheckTimeout = 5 * time.Second
	templateCacheTTL     = 30 * time.Second
)

// ValidTemplate reports whether t is a template path as the config file
// and POST /config/pooltemplate accept it: <folder>/<name>, at most 255
// bytes, no leading or trailing '/', no empty, "." or ".." element, no
// control characters (upstream refuses a template without '/').
func ValidTemplate(t string) bool {
	if !validPath(t) || !strings.Contains(t, "/") {
		return false
	}
	for el := range strings.SplitSeq(t, "/") {
		if el == "." || el == ".." || strings.TrimSpace(el) == "" {
			return false
		}
	}
	return true
}

// templateCache remembers existence checks per datacenter and path.
type templateCache struct {
	mu sync.Mutex
	m  map[string]templateSeen
}

type templateSeen struct {
	exists, known bool
	at            time.Time
}

// templateExists asks s.Templates whether p's template t exists. known is
// false when there is no finder or it could not tell. Unless fresh, an
// answer (or a failure to get one: vCenter down must not make every GET
// /config wait) younger than templateCacheTTL is reused.
func (s *Service) templateExists(p PoolConfig, t string, fresh bool) (exists, known bool) {
	if s.Templates == nil {
		return false, false
	}
	key := p.Datacenter + "\x00" + t
	now := time.Now()
	s.tmpl.mu.Lock()
	if seen, ok := s.tmpl.m[key]; ok && !fresh && now.Sub(seen.at) < templateCacheTTL && !now.Before(seen.at) {
		s.tmpl.mu.Unlock()
		return seen.exists, seen.known
	}
	s.tmpl.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), templateCheckTimeout)
	defer cancel()
	exists, err := s.Templates.TemplateExists(ctx, p.Datacenter, t)
	known = err == nil
	if err != nil {
		exists = false
		if !errors.Is(err, context.DeadlineExceeded) {
			s.Logger.Warn("cannot check template", "pool", p.Name, "template", t, "err", err)
		}
	}
	s.tmpl.mu.Lock()
	if s.tmpl.m == nil {
		s.tmpl.m = make(map[string]templateSeen)
	}
	s.tmpl.m[key] = templateSeen{exists, known, now}
	s.tmpl.mu.Unlock()
	return exists, known
}

// TemplateReady reports whether pool p's (effective) template is known to
// exist: GET /config's template_ready. False when it is missing or when
// the provider cannot tell.
func (s *Service) TemplateReady(p PoolConfig) bool {
	ok, known := s.templateExists(p, p.Template, false)
	return ok && known
}
