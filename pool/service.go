package pool

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store"
)

// MaxCheckoutCount is the most VMs of one pool name a single checkout may ask for.
const MaxCheckoutCount = 100

// Service is what the API asks of the pooler: checkout, return, modify,
// snapshot, revert and disk requests, VM details, status and summaries.
// Build it with NewService, then set the hooks you need (Kick, Now,
// Cloning, Health, Backend, Templates) before first use.
type Service struct {
	Store  Store
	Kick   func()           // wakes the manager after checkout, return or override
	Now    func() time.Time // clock
	Logger *slog.Logger
	// Cloning, when set, reports how many clones are in flight (for /status).
	Cloning func() int
	// Health, when set, reports each pool's PoolHealth (the manager's).
	Health func() map[string]PoolHealth
	// Backend, when set, reports whether the provider is connected to
	// vCenter and, if not, why (for /status and /healthcheck).
	Backend func() (connected bool, reason string)
	// Replica, when set, names this replica and the leader (etcd).
	Replica func() ReplicaStatus
	// Templates, when set, checks that templates exist (template.go).
	Templates TemplateFinder

	cur   atomic.Pointer[serviceState] // the configuration in force (SetConfig swaps it)
	waits *waitQueue                   // waiting checkouts (wait.go)
	pass  passes                       // the manager's passes, for long-polls (wait.go)

	tmpl templateCache

	statusMu  sync.Mutex
	statusAt  time.Time
	statusDay store.DayRollup
	statusOvr map[string]store.Override
}

// NewService returns a Service with cfg in force, no tag filters, a no-op
// Kick, time.Now and, for a nil logger, one that discards. Tag filters
// ([tagfilter]) come with a configuration: SetConfig(cfg, tagFilter); a
// regex that does not compile is logged and ignored (main validates them
// when it reads the config).
func NewService(cfg *Config, st Store, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{Store: st, Logger: logger, Now: time.Now, Kick: func() {}, waits: &waitQueue{}}
	s.cur.Store(newServiceState(cfg, nil, logger))
	return s
}

// Caller is who makes a request. User is the owner of a valid token ("" when
// none was given); Auth says whether authentication is configured.
type Caller struct {
	User string
	Auth bool
}

// Pools returns the configured pool names in config order.
func (s *Service) Pools() []string {
	pools := s.Current().Pools
	names := make([]string, len(pools))
	for i, p := range pools {
		names[i] = p.Name
	}
	return names
}

// Resolve returns the pools a pool name or alias stands for, in config order.
func (s *Service) Resolve(name string) ([]string, bool) {
	p, ok := s.state().aliases[name]
	return p, ok
}

// Want asks for Count VMs of Name, a pool or an alias.
type Want struct {
	Name  string
	Count int
}

// Checkout hands out VMs for every want, all or nothing, and returns them by
// requested name. ENOTFOUND for an unknown pool or alias, EINVALID for a bad
// count, EEMPTY (503) when any pool is short; then nothing is handed out.
// A caller with a token gets vm_lifetime_auth and is recorded as the user.
// Waiting checkouts (wait.go) come first: while one waits for a pool, a
// checkout that does not wait gets EEMPTY for it too.
func (s *Service) Checkout(wants []Want, c Caller) (map[string][]store.VM, error) {
	cur := s.state()
	if err := cur.validCheckout(wants, c); err != nil {
		return nil, err
	}
	if s.waitersHold(cur, wants) {
		return nil, errs.Errorf(errs.EEMPTY, "waiting checkouts are ahead of this one")
	}
	return s.checkoutNow(cur, wants, c)
}

// validCheckout checks a checkout's names and counts, then that it has a
// token when checkout_requires_token says it needs one.
func (cur *serviceState) validCheckout(wants []Want, c Caller) error {
	if err := validWants(cur, wants); err != nil {
		return err
	} else if c.Auth && c.User == "" && cur.cfg.CheckoutRequiresToken {
		return errs.Errorf(errs.EUNAUTHORIZED, "a token is required to check VMs out (checkout_requires_token)")
	}
	return nil
}

// validWants checks the names and counts of a checkout.
func validWants(cur *serviceState, wants []Want) error {
	if len(wants) == 0 {
		return errs.Errorf(errs.ENOTFOUND, "no pool requested")
	}
	for _, w := range wants {
		if _, ok := cur.aliases[w.Name]; !ok {
			return errs.Errorf(errs.ENOTFOUND, "unknown pool or alias %q", w.Name)
		}
		if w.Count < 1 || w.Count > MaxCheckoutCount {
			return errs.Errorf(errs.EINVALID, "VM count for %q must be from 1 to %d", w.Name, MaxCheckoutCount)
		}
	}
	return nil
}

// checkoutNow is Checkout of valid wants, waiters or not.
func (s *Service) checkoutNow(cur *serviceState, wants []Want, c Caller) (map[string][]store.VM, error) {
	lifetime := 0
	if c.User != "" && cur.cfg.VMLifetimeAuth > 0 {
		lifetime = cur.cfg.VMLifetimeAuth
	}
	var err error
	// A plan rests on counts that a concurrent checkout may change; an alias
	// with another candidate deserves a second plan.
	for range 3 {
		plan, perName := planCheckout(s.Store.CountsNow(), cur.aliases, wants)
		var vms []store.VM
		vms, err = s.Store.Checkout(store.CheckoutRequest{Pools: plan, Lifetime: lifetime, User: c.User, Quota: cur.quota(c.User)})
		if err == nil {
			s.Kick()
			return assign(vms, perName), nil
		}
		if errs.ErrorCode(err) != errs.EEMPTY || !hasAlias(cur.aliases, wants) {
			break
		}
	}
	if errs.ErrorCode(err) == errs.EEMPTY {
		s.Kick() // the manager may be able to refill sooner
	}
	return nil, err
}

type share struct {
	name, pool string
	count      int
}

// planCheckout picks, VM by VM, a candidate pool with ready VMs left (else the
// first candidate), and merges the picks per pool.
func planCheckout(counts map[string]store.PoolCounts, aliases map[string][]string, wants []Want) ([]store.PoolCount, []share) {
	left := make(map[string]int)
	for name, c := range counts {
		left[name] = c.Ready
	}
	var shares []share
	var plan []store.PoolCount
	add := func(name, pool string) {
		if i := slices.IndexFunc(shares, func(sh share) bool { return sh.name == name && sh.pool == pool }); i >= 0 {
			shares[i].count++
		} else {
			shares = append(shares, share{name, pool, 1})
		}
		if i := slices.IndexFunc(plan, func(pc store.PoolCount) bool { return pc.Pool == pool }); i >= 0 {
			plan[i].Count++
		} else {
			plan = append(plan, store.PoolCount{Pool: pool, Count: 1})
		}
	}
	for _, w := range wants {
		cands := aliases[w.Name]
		for range w.Count {
			pick := cands[0]
			for _, p := range cands {
				if left[p] > 0 {
					pick = p
					break
				}
			}
			left[pick]--
			add(w.Name, pick)
		}
	}
	return plan, shares
}

func hasAlias(aliases map[string][]string, wants []Want) bool {
	for _, w := range wants {
		if len(aliases[w.Name]) > 1 {
			return true
		}
	}
	return false
}

// assign deals the VMs handed out to the names that asked for them.
func assign(vms []store.VM, shares []share) map[string][]store.VM {
	byPool := make(map[string][]store.VM)
	for _, vm := range vms {
		byPool[vm.Pool] = append(byPool[vm.Pool], vm)
	}
	out := make(map[string][]store.VM)
	for _, sh := range shares {
		got := byPool[sh.pool]
		n := min(sh.count, len(got))
		out[sh.name] = append(out[sh.name], got[:n]...)
		byPool[sh.pool] = got[n:]
	}
	return out
}
