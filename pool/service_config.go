package pool

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// MaxPoolSize bounds a pool size set through /config/poolsize.
const MaxPoolSize = 10000

// Effective returns the configured pools with the runtime overrides of
// /config/* applied, in config order.
func (s *Service) Effective() ([]PoolConfig, error) {
	ovr, err := s.Store.Overrides()
	if err != nil {
		return nil, err
	}
	out := slices.Clone(s.Current().Pools)
	for i := range out {
		out[i] = out[i].WithOverride(ovr[out[i].Name])
	}
	return out, nil
}

// overrideField is one setting /config/* changes.
type overrideField struct {
	field string            // the store's name of the field
	key   string            // upstream's error key for bad names
	valid func(string) bool // whether a value may be set
	get   func(p PoolConfig) string
	set   func(o *store.Override, v string) // v == "" resets
	// template: the value is a template, refused when the provider says
	// it does not exist.
	template bool
}

var (
	fieldSize = overrideField{
		field: store.FieldSize,
		key:   "not_configured",
		valid: func(v string) bool {
			n, err := strconv.Atoi(v)
			return err == nil && n >= 0 && n <= MaxPoolSize
		},
		get: func(p PoolConfig) string { return strconv.Itoa(p.Size) },
		set: func(o *store.Override, v string) {
			if v == "" {
				o.Size = nil
				return
			}
			n, _ := strconv.Atoi(v)
			o.Size = &n
		},
	}
	fieldTemplate = overrideField{
		field:    store.FieldTemplate,
		key:      "bad_templates",
		template: true,
		valid:    ValidTemplate,
		get:      func(p PoolConfig) string { return p.Template },
		set:      func(o *store.Override, v string) { o.Template = v },
	}
	fieldCloneTarget = overrideField{
		field: store.FieldCloneTarget,
		key:   "bad_templates",
		valid: validPath,
		get:   func(p PoolConfig) string { return p.CloneTarget },
		set:   func(o *store.Override, v string) { o.CloneTarget = v },
	}
)

// validPath accepts an inventory path: not empty, no leading or trailing
// '/', no empty element, at most 255 bytes, no control characters.
func validPath(p string) bool {
	if p == "" || len(p) > 255 || strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || strings.Contains(p, "//") {
		return false
	}
	return !strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f })
}

// SetPoolSizes overrides pool sizes (pool → size, 0..MaxPoolSize; a
// size out of range is a bad value). See setOverrides.
func (s *Service) SetPoolSizes(sizes map[string]int, c Caller) (bool, error) {
	vals := make(map[string]string, len(sizes))
	for name, n := range sizes {
		vals[name] = strconv.Itoa(n)
	}
	return s.setOverrides(vals, c, fieldSize)
}

// SetPoolTemplates overrides pool templates (pool → "<folder/template>").
// A template must be ValidTemplate and, when s.Templates can tell, exist.
func (s *Service) SetPoolTemplates(templates map[string]string, c Caller) (bool, error) {
	return s.setOverrides(templates, c, fieldTemplate)
}

// SetCloneTargets overrides pool clone targets (pool → "<cluster>").
func (s *Service) SetCloneTargets(targets map[string]string, c Caller) (bool, error) {
	return s.setOverrides(targets, c, fieldCloneTarget)
}

// setOverrides validates every pool and value first (EINVALID
// listing, under f.key, the bad ones: unknown pools, aliases included, and
// bad values), then stores the overrides and kicks the manager. It reports
// whether any effective value changed. 401 without a token when auth is on.
func (s *Service) setOverrides(body map[string]string, c Caller, f overrideField) (bool, error) {
	if err := needToken(c); err != nil {
		return false, err
	} else if len(body) == 0 {
		return false, errs.Errorf(errs.EINVALID, "Request body must name at least one pool")
	}
	cfg := s.Current()
	names := slices.Sorted(maps.Keys(body))
	vals := make(map[string]string, len(body))
	var bad []string
	for _, name := range names {
		v := body[name]
		p, known := cfg.Pool(name)
		if !known || !f.valid(v) {
			bad = append(bad, name)
			continue
		}
		if f.template {
			// A template the provider says is missing would only fail clones.
			if exists, checked := s.templateExists(p, v, true); checked && !exists {
				bad = append(bad, name)
				continue
			}
		}
		vals[name] = v
	}
	if len(bad) > 0 {
		return false, namesError(errs.EINVALID, "unknown pools or bad values", f.key, bad)
	}
	changes := make([]store.OverrideChange, 0, len(names))
	for _, name := range names {
		p, _ := cfg.Pool(name)
		changes = append(changes, store.OverrideChange{Pool: name, Field: f.field, Value: vals[name], Configured: f.get(p)})
	}
	before, err := s.Store.ChangeOverrides(changes)
	if err != nil {
		return false, err
	}
	changed := false
	for _, name := range names {
		p, _ := cfg.Pool(name)
		if f.get(p.WithOverride(before[name])) != vals[name] {
			changed = true
		}
	}
	if changed {
		s.InvalidateStatus()
		s.Kick()
	}
	return changed, nil
}

// Reset is the outcome of undoing an override: the effective value before
// the reset and the configured one (now in force again).
type Reset struct {
	Before, Configured string
}

// Changed reports whether the reset changed the effective value.
func (r Reset) Changed() bool { return r.Before != r.Configured }

// ResetPoolSize undoes a pool's size override. ENOTFOUND for an unknown pool.
func (s *Service) ResetPoolSize(pool string, c Caller) (Reset, error) {
	return s.resetOverride(pool, c, fieldSize)
}

// ResetPoolTemplate undoes a pool's template override.
func (s *Service) ResetPoolTemplate(pool string, c Caller) (Reset, error) {
	return s.resetOverride(pool, c, fieldTemplate)
}

// ResetCloneTarget undoes a pool's clone target override.
func (s *Service) ResetCloneTarget(pool string, c Caller) (Reset, error) {
	return s.resetOverride(pool, c, fieldCloneTarget)
}

func (s *Service) resetOverride(pool string, c Caller, f overrideField) (Reset, error) {
	if err := needToken(c); err != nil {
		return Reset{}, err
	}
	p, ok := s.Current().Pool(pool)
	if !ok {
		return Reset{}, errs.Errorf(errs.ENOTFOUND, "unknown pool %q", pool)
	}
	before, err := s.Store.ChangeOverrides([]store.OverrideChange{{Pool: pool, Field: f.field, Configured: f.get(p), Clear: true}})
	if err != nil {
		return Reset{}, err
	}
	o := before[pool]
	r := Reset{Before: f.get(p.WithOverride(o)), Configured: f.get(p)}
	if f.set(&o, ""); o != before[pool] {
		s.InvalidateStatus()
		s.Kick()
	}
	return r, nil
}

// ResetPools drains the named pools (POST /poolreset {"<pool>": ...}): their
// ready and pending VMs, except those cloned for ondemand requests, are
// scheduled for destruction, so the manager clones fresh ones (from the
// current template). EINVALID listing unknown pools under "bad_pools"; 401 without a
// token when auth is on. It returns how many VMs it scheduled.
func (s *Service) ResetPools(pools []string, c Caller) (int, error) {
	if err := needToken(c); err != nil {
		return 0, err
	} else if len(pools) == 0 {
		return 0, errs.Errorf(errs.EINVALID, "Request body must name at least one pool")
	}
	names := slices.Compact(slices.Sorted(slices.Values(pools)))
	var bad []string
	for _, name := range names {
		if _, ok := s.Current().Pool(name); !ok {
			bad = append(bad, name)
		}
	}
	if len(bad) > 0 {
		return 0, namesError(errs.EINVALID, "unknown pools", "bad_pools", bad)
	}
	n := 0
	for _, name := range names {
		for _, st := range []store.State{store.StateReady, store.StatePending} {
			vms, err := s.Store.List(name, st)
			if err != nil {
				return n, err
			}
			for _, vm := range vms {
				if vm.RequestID != "" {
					continue
				}
				// Only if still in st: a checkout may have taken it meanwhile.
				switch err := s.Store.Fail(vm.Hostname, st, "pool reset"); errs.ErrorCode(err) {
				case "":
					n++
				case errs.ENOTFOUND, errs.ECONFLICT:
				default:
					return n, err
				}
			}
		}
	}
	s.InvalidateStatus()
	s.Kick()
	return n, nil
}
