package httpapi

import (
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
)

// redactedValue replaces a secret's value in /config answers.
const redactedValue = "********"

// secretKey reports whether a configuration key names a secret.
func secretKey(key string) bool {
	k := strings.ToLower(key)
	return strings.Contains(k, "password") || strings.Contains(k, "secret") || strings.Contains(k, "token") ||
		strings.Contains(k, "credential") || strings.HasSuffix(k, "_key")
}

// configValue writes a configuration value as JSON with its TOML key names
// (embedded structs flattened, `toml:"-"` fields, nil pointers and empty
// strings, slices and maps left out) and every secret masked. ok is false
// for a value to leave out.
func configValue(v reflect.Value) (out any, ok bool) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil, false
		}
		return configValue(v.Elem())
	case reflect.Struct:
		o := obj{}
		configStruct(v, &o)
		return o, true
	case reflect.Map:
		if v.Len() == 0 || v.Type().Key().Kind() != reflect.String {
			return nil, false
		}
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		o := obj{}
		for _, k := range keys {
			if e, ok := configValue(v.MapIndex(k)); ok {
				o = append(o, configMember(k.String(), e))
			}
		}
		return o, true
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			return nil, false
		}
		list := make([]any, 0, v.Len())
		for i := range v.Len() {
			if e, ok := configValue(v.Index(i)); ok {
				list = append(list, e)
			}
		}
		return list, true
	case reflect.String:
		return v.String(), v.Len() > 0
	case reflect.Bool:
		return v.Bool(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return int(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return int(v.Uint()), true
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	}
	return nil, false // funcs, channels: nothing to show
}

func configStruct(v reflect.Value, o *obj) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "-" {
			continue
		}
		fv := v.Field(i)
		if strings.Contains(opts, "omitempty") && fv.IsZero() {
			continue // a key that is off unless set (max_running_per_user, ...)
		}
		if f.Anonymous && name == "" && fv.Kind() == reflect.Struct {
			configStruct(fv, o)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if e, ok := configValue(fv); ok {
			*o = append(*o, configMember(name, e))
		}
	}
}

// configMember masks the value of a secret key, whole (an object or list
// under such a key is a secret too).
func configMember(key string, v any) kv {
	if secretKey(key) {
		v = redactedValue
	}
	return kv{key, v}
}

// handleConfig answers GET /config: the pools as in force (runtime
// overrides applied) with upstream's "template_ready", and the whole
// configuration with its secrets masked.
func (s *server) handleConfig(w http.ResponseWriter, r *http.Request, c call) error {
	pools, err := s.svc.Effective()
	if err != nil {
		return err
	} else if len(pools) == 0 {
		return errs.Errorf(errs.ENOTFOUND, "no pools configured")
	}
	list := make([]obj, len(pools))
	for i, p := range pools {
		o, _ := configValue(reflect.ValueOf(p))
		list[i] = append(o.(obj), kv{"template_ready", s.svc.TemplateReady(p)})
	}
	out := obj{{"ok", true}, {"pool_configuration", list}}
	if cfg, ok := configValue(reflect.ValueOf(s.redacted())); ok {
		if !s.seesPrivate(r) {
			cfg = withoutPrivate(cfg)
		}
		out = append(out, kv{"config", cfg})
	}
	writeJSON(w, http.StatusOK, append(out, kv{"status", obj{{"ok", true}}}))
	return nil
}

// handleFullConfig answers GET /full_config (upstream 2.3+): the whole
// configuration, secrets masked (upstream showed them).
func (s *server) handleFullConfig(w http.ResponseWriter, r *http.Request, c call) error {
	cfg, ok := configValue(reflect.ValueOf(s.redacted()))
	if !ok {
		cfg = obj{}
	} else if !s.seesPrivate(r) {
		cfg = withoutPrivate(cfg)
	}
	writeJSON(w, http.StatusOK, obj{{"ok", true}, {"full_config", cfg}, {"status", obj{{"ok", true}}}})
	return nil
}

// redacted is the configuration to show: Config.Redacted, or what it
// returns when it is a func() any (the configuration in force after reloads).
func (s *server) redacted() any {
	if f, ok := s.cfg.Redacted.(func() any); ok {
		return f()
	}
	return s.cfg.Redacted
}

// experimental gates a configuration write: 405 unless
// experimental_features is on (as upstream), then a token when auth is on.
func (s *server) experimental(h handler) handler {
	return s.messages(func(w http.ResponseWriter, r *http.Request, c call) error {
		if !s.svc.Current().ExperimentalFeatures {
			return errs.Errorf(eMethod, "%s %s needs experimental_features = true", r.Method, r.URL.Path)
		}
		return h(w, r, c)
	})
}

// setter applies overrides from a body {"<pool>": <value>}: a
// pool.Service method with the values typed.
type setter func(body map[string]any, c pool.Caller) (bool, error)

// setSizes is SetPoolSizes of {"<pool>": "<size>"|<size>}; a value that is not
// a whole number becomes -1, which pool refuses with the other bad values.
func (s *server) setSizes(body map[string]any, c pool.Caller) (bool, error) {
	sizes := make(map[string]int, len(body))
	for name, v := range body {
		n, ok := wholeNumber(v)
		if !ok {
			n = -1
		}
		sizes[name] = n
	}
	return s.svc.SetPoolSizes(sizes, c)
}

// stringValues reads {"<pool>": "<text>"}; a value that is not a JSON string
// becomes "", which pool refuses as a template or clone target.
func stringValues(body map[string]any) map[string]string {
	out := make(map[string]string, len(body))
	for name, v := range body {
		out[name], _ = v.(string)
	}
	return out
}

// operatorBody resolves the caller of a configuration write (see
// operator), then reads its body {"<pool>": ...}.
func (s *server) operatorBody(w http.ResponseWriter, r *http.Request) (pool.Caller, map[string]any, error) {
	caller, err := s.operator(r)
	if err != nil {
		return caller, nil, err
	}
	var body map[string]any
	err = readJSON(w, r, &body)
	return caller, body, err
}

// override answers a POST /config/* write: 201 if anything changed, else
// 200; bad names and values are 400 with them listed (pool names the key).
func (s *server) override(w http.ResponseWriter, r *http.Request, set setter) error {
	caller, body, err := s.operatorBody(w, r)
	if err != nil {
		return err
	}
	changed, err := set(body, caller)
	if err != nil {
		return err
	}
	if changed {
		s.auditCaller(r, "config_override", caller, "route", r.URL.Path, "pools", strings.Join(slices.Sorted(maps.Keys(body)), ","))
	}
	status := http.StatusOK
	if changed {
		status = http.StatusCreated
	}
	writeJSON(w, status, obj{{"ok", true}})
	return nil
}

// resetter is a pool.Service method that undoes an override.
type resetter func(pool string, c pool.Caller) (pool.Reset, error)

// reset answers a DELETE /config/*/<pool>: the value before the reset and
// the configured one, 201 if they differ, else 200.
func (s *server) reset(w http.ResponseWriter, r *http.Request, c call, undo resetter, name string, asInt bool) error {
	caller, err := s.operator(r)
	if err != nil {
		return err
	}
	res, err := undo(c.ps.ByName("pool"), caller)
	if err != nil {
		return err
	}
	if res.Changed() {
		s.auditCaller(r, "config_reset", caller, "route", r.URL.Path, "pool", c.ps.ByName("pool"))
	}
	val := func(v string) any {
		if asInt {
			n, _ := strconv.Atoi(v)
			return n
		}
		return v
	}
	status := http.StatusOK
	if res.Changed() {
		status = http.StatusCreated
	}
	writeJSON(w, status, obj{{"ok", true}, {name + "_before_reset", val(res.Before)}, {name + "_before_overrides", val(res.Configured)}})
	return nil
}

func (s *server) handlePoolSize(w http.ResponseWriter, r *http.Request, c call) error {
	return s.override(w, r, s.setSizes)
}

func (s *server) handlePoolTemplate(w http.ResponseWriter, r *http.Request, c call) error {
	return s.override(w, r, func(body map[string]any, c pool.Caller) (bool, error) {
		return s.svc.SetPoolTemplates(stringValues(body), c)
	})
}

func (s *server) handleCloneTarget(w http.ResponseWriter, r *http.Request, c call) error {
	return s.override(w, r, func(body map[string]any, c pool.Caller) (bool, error) {
		return s.svc.SetCloneTargets(stringValues(body), c)
	})
}

func (s *server) handlePoolSizeReset(w http.ResponseWriter, r *http.Request, c call) error {
	return s.reset(w, r, c, s.svc.ResetPoolSize, "pool_size", true)
}

func (s *server) handlePoolTemplateReset(w http.ResponseWriter, r *http.Request, c call) error {
	return s.reset(w, r, c, s.svc.ResetPoolTemplate, "template", false)
}

func (s *server) handleCloneTargetReset(w http.ResponseWriter, r *http.Request, c call) error {
	return s.reset(w, r, c, s.svc.ResetCloneTarget, "clone_target", false)
}

// handlePoolReset answers POST /poolreset {"<pool>": ...}: the pools' ready
// and pending VMs are drained so the manager clones fresh ones; 201.
func (s *server) handlePoolReset(w http.ResponseWriter, r *http.Request, c call) error {
	caller, body, err := s.operatorBody(w, r)
	if err != nil {
		return err
	}
	names := slices.Sorted(maps.Keys(body))
	if _, err := s.svc.ResetPools(names, caller); err != nil {
		return err
	}
	s.auditCaller(r, "pool_reset", caller, "pools", strings.Join(names, ","))
	writeJSON(w, http.StatusCreated, obj{{"ok", true}})
	return nil
}
