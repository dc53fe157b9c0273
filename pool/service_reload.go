package pool

import (
	"log/slog"
	"regexp"
	"slices"
)

// serviceState is the configuration a Service has in force with what it
// derives from it. A request reads it once, so a reload never shows it half
// of one configuration and half of another.
type serviceState struct {
	cfg     *Config
	filters map[string]*regexp.Regexp // [tagfilter]
	allowed map[string]bool           // allowed_tags
	aliases map[string][]string       // name → candidate pools, config order
}

func newServiceState(cfg *Config, tagFilter map[string]string, logger *slog.Logger) *serviceState {
	cfg.Defaults() // settings are read without fallbacks from here on
	st := &serviceState{
		cfg:     cfg,
		filters: make(map[string]*regexp.Regexp),
		allowed: make(map[string]bool),
		aliases: make(map[string][]string),
	}
	for tag, expr := range tagFilter {
		re, err := regexp.Compile(expr)
		if err != nil {
			logger.Error("tagfilter ignored", "tag", tag, "err", err)
			continue
		}
		st.filters[tag] = re
	}
	for _, t := range cfg.AllowedTags {
		st.allowed[t] = true
	}
	for _, p := range cfg.Pools {
		st.aliases[p.Name] = append(st.aliases[p.Name], p.Name)
	}
	for _, p := range cfg.Pools {
		for _, a := range p.Alias {
			if !slices.Contains(st.aliases[a], p.Name) {
				st.aliases[a] = append(st.aliases[a], p.Name)
			}
		}
	}
	return st
}

// state returns the configuration in force and what derives from it.
func (s *Service) state() *serviceState {
	return s.cur.Load()
}

// Current returns the configuration in force: NewService's until the
// first SetConfig, then the last one set. Callers must not modify it.
func (s *Service) Current() *Config { return s.state().cfg }

// SetConfig puts a new configuration in force at once (a reload): pools,
// aliases, lifetimes, allowed tags and tag filters. Requests already
// running finish with the configuration they started with. A pool that is
// no longer configured is no longer handed out; its VMs stay in the store
// for the manager (see Manager.SetConfig).
func (s *Service) SetConfig(cfg *Config, tagFilter map[string]string) {
	s.cur.Store(newServiceState(cfg, tagFilter, s.Logger))
	s.InvalidateStatus()
}
