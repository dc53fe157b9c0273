package main

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
)

// reload re-reads the configuration file and puts it in force: it is what
// SIGHUP (and systemctl reload) calls. A file that does not load or
// validate is refused with every reason logged, and the configuration in
// force stays. Keys that cannot change while running (listen, database,
// [providers], [auth] provider, site_name) keep their running value and
// each change is logged as taking effect at the next restart; everything
// else applies at once: pools added start filling, pools removed stop
// being handed out (their ready VMs are destroyed, running ones live out
// their lifetime), sizes, templates (old VMs drained), timeouts, TTLs,
// lifetimes, tag rules, log level, the htpasswd file and the scheduled
// backup settings.
func (d *daemon) reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	old := d.cfg.Load()
	d.logger.Info("reloading configuration", "config", d.path)
	next, err := LoadConfig(d.path)
	if err != nil {
		d.refuse(err)
		return err
	}
	for _, w := range next.Warnings {
		d.logger.Warn("config: " + w)
	}
	for _, k := range keepRestartOnly(old, next) {
		d.logger.Warn("reload: "+k.key+" cannot change while running; it takes effect at the next restart",
			"running", k.running, "in_file", k.inFile)
	}
	if next.Auth != nil && old.Auth != nil && next.Auth.File != old.Auth.File {
		if err := d.auth.SetFile(next.Auth.File); err != nil {
			d.refuse(err)
			return err
		}
	}
	lvl, _ := parseLevel(next.Global.LogLevel)
	d.level.Set(lvl)
	d.svc.SetConfig(&next.Global.Config, next.TagFilter)
	d.cfg.Store(next) // a manager started from now on (a new leader's) reads it
	if d.mgr != nil {
		d.mgr.SetConfig(&next.Global.Config)
	} else if m := d.group.mgr.Load(); m != nil {
		m.SetConfig(ownConfig(&next.Global.Config))
	}
	d.logChanges(old, next)
	return nil
}

// refuse logs why a reload was refused, one line per reason.
func (d *daemon) refuse(err error) {
	for _, reason := range strings.Split(err.Error(), "\n") {
		d.logger.Error("reload refused; the configuration in force stays", "reason", reason)
	}
}

type restartOnly struct {
	key             string
	running, inFile string
}

// keepRestartOnly copies into next the running values of the keys that
// cannot change live and returns those that differed.
func keepRestartOnly(old, next *Config) []restartOnly {
	var out []restartOnly
	keep := func(key string, o, n any, restore func()) {
		if !reflect.DeepEqual(o, n) {
			out = append(out, restartOnly{key, fmt.Sprint(o), fmt.Sprint(n)})
			restore()
		}
	}
	keep("[config] listen", old.Global.Listen, next.Global.Listen, func() { next.Global.Listen = old.Global.Listen })
	keep("[config] database", old.Global.Database, next.Global.Database, func() { next.Global.Database = old.Global.Database })
	keep("[config] site_name", old.Global.SiteName, next.Global.SiteName, func() { next.Global.SiteName = old.Global.SiteName })
	keep("[config] dashboard_public", old.Global.dashboardPublic(), next.Global.dashboardPublic(),
		func() { next.Global.DashboardPublic = old.Global.DashboardPublic })
	keep("[config] data_ttl", old.Global.DataTTL, next.Global.DataTTL, func() { next.Global.DataTTL = old.Global.DataTTL })
	if !reflect.DeepEqual(old.Providers, next.Providers) { // shown without secrets
		out = append(out, restartOnly{"[providers]", old.Providers.describe(), next.Providers.describe()})
		next.Providers = old.Providers
	}
	keep("[auth] provider", authProvider(old), authProvider(next), func() { next.Auth = old.Auth })
	out = append(out, keepAuthRestartOnly(old, next)...)
	return out
}

func authProvider(c *Config) string {
	if c.Auth == nil {
		return "(none)"
	}
	return c.Auth.Provider
}

// logChanges logs what the reload changed: pools added, removed and
// changed (key by key), and the [config] keys.
func (d *daemon) logChanges(old, next *Config) {
	var added, removed []string
	for _, p := range next.Pools {
		o, ok := old.Global.Config.Pool(p.Name)
		if !ok {
			added = append(added, p.Name)
			continue
		}
		if diff := fieldDiff(o, p); len(diff) > 0 {
			d.logger.Info("reload: pool changed", "pool", p.Name, "changes", strings.Join(diff, "; "))
		}
	}
	for _, p := range old.Pools {
		if _, ok := next.Global.Config.Pool(p.Name); !ok {
			removed = append(removed, p.Name)
		}
	}
	og, ng := old.Global, next.Global
	og.Config.Pools, ng.Config.Pools = nil, nil
	diff := fieldDiff(og, ng)
	if !reflect.DeepEqual(old.TagFilter, next.TagFilter) {
		diff = append(diff, "[tagfilter] changed")
	}
	if old.Auth != nil && next.Auth != nil && old.Auth.File != next.Auth.File {
		diff = append(diff, "[auth] file: "+old.Auth.File+" -> "+next.Auth.File)
	}
	d.logger.Info("configuration reloaded", "pools", len(next.Pools), "added", strings.Join(added, ","),
		"removed", strings.Join(removed, ","), "changes", strings.Join(diff, "; "))
}

// fieldDiff lists the TOML keys whose values differ between two structs
// of the same type ("size: 2 -> 5"), embedded structs flattened.
func fieldDiff(a, b any) []string {
	var out []string
	var walk func(a, b reflect.Value)
	walk = func(a, b reflect.Value) {
		t := a.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if f.Anonymous && a.Field(i).Kind() == reflect.Struct {
				walk(a.Field(i), b.Field(i))
				continue
			}
			if name == "-" || name == "" {
				continue
			}
			av, bv := a.Field(i).Interface(), b.Field(i).Interface()
			if !reflect.DeepEqual(av, bv) {
				out = append(out, fmt.Sprintf("%s: %v -> %v", name, show(av), show(bv)))
			}
		}
	}
	walk(reflect.ValueOf(a), reflect.ValueOf(b))
	slices.Sort(out)
	return out
}

// show writes a config value for the log: pointers followed.
func show(v any) any {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "(default)"
		}
		return rv.Elem().Interface()
	}
	return v
}

// describe writes the providers for the log, without secrets.
func (p Providers) describe() string {
	if p.Fake != nil {
		return "fake"
	}
	return fmt.Sprintf("vsphere %+v", p.Vsphere.Redacted())
}
