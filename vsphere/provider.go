// Package vsphere implements pool.Provider on VMware vSphere with govmomi,
// the only package of vmpooler that imports govmomi.
//
// A Provider keeps one logged-in vCenter session (kept alive, and logged in
// again once when vCenter says NotAuthenticated), puts a deadline on every
// call, and maps vSphere faults to pool's error sentinels by fault type.
// VMs and folders are found by inventory path, never by cached MOIDs, so a
// vCenter restart costs a re-login and nothing else.
//
// With Config.Simulator the Provider starts govmomi's vCenter simulator in
// the process, creates each pool's template and folder in it, and then uses
// exactly the same client code as against a real vCenter. Serve runs the
// same simulator stand-alone for end-to-end tests.
package vsphere

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/fault"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/session/keepalive"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

// Provider is a pool.Provider on one vCenter (or the embedded simulator).
// Build it with New, set any field, then Open; Close when done.
type Provider struct {
	// KeepAlive is the interval of session keepalive calls (default 5m).
	KeepAlive time.Duration
	// Dial opens the TCP connection of the "ssh" and "tcp:<port>" ready
	// checks; tests replace it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	cfg    Config
	pools  []pool.PoolConfig
	logger *slog.Logger

	dcPaths map[string]string // configured datacenter → inventory path (set by Open)

	mu          sync.Mutex // guards the fields below
	stopConnect func()     // ends Start's loop and waits for it
	connErr     error      // why Start is not connected yet (nil once connected)
	connSince   time.Time  // when the connection state last changed
	client      *vim25.Client
	rt          *reloginRT
	sim         *simServer
	dcName      string // default datacenter inventory path

	simDestroy sync.Mutex   // see Destroy
	simViews   sync.RWMutex // see simLockViews

	fieldsMu sync.Mutex
	fields   map[int32]string // custom field key → name

	wholeExtraConfig atomic.Bool // see ownerPaths

	targetMu  sync.Mutex
	defaultRP map[string]types.ManagedObjectReference // datacenter → resource pool of its only cluster or host

	folderMu sync.Mutex // one folder creation at a time (createFolders)

	notesMu sync.Mutex
	notes   map[string]string // pool → why its clones are not as asked (noteLinked)
}

// New returns a Provider for cfg and pools; nothing connects until Open.
func New(cfg Config, pools []pool.PoolConfig, logger *slog.Logger) *Provider {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Provider{
		KeepAlive: 5 * time.Minute,
		Dial:      defaultDial,
		cfg:       cfg.Defaults(),
		pools:     pools,
		logger:    logger.With("component", "vsphere"),
		fields:    make(map[int32]string),
		notes:     make(map[string]string),
	}
}

var (
	_ pool.Provider     = (*Provider)(nil)
	_ pool.NoteProvider = (*Provider)(nil)
)

// Open validates the configuration, starts the simulator when configured,
// connects and logs in. Errors wrap pool.ErrAuth for bad credentials and
// pool.ErrTransient for an unreachable vCenter.
func (p *Provider) Open(ctx context.Context) error {
	u, err := p.serverURL(ctx)
	if err != nil {
		return err
	}
	if err := p.attach(ctx, u); err != nil {
		p.closeSim()
		return err
	}
	return nil
}

// attach connects, logs in, resolves the datacenters and checks the
// pools' placement; on failure it leaves nothing connected.
func (p *Provider) attach(ctx context.Context, u *url.URL) error {
	insecure := p.cfg.Insecure || p.cfg.Simulator
	if err := p.connect(ctx, u, insecure); err != nil {
		return err
	}
	err := p.resolveDefaultDatacenter(ctx)
	if err == nil {
		err = p.checkPlacement(ctx)
	}
	if err != nil {
		_ = p.logout()
		return err
	}
	p.logger.Info("connected to vCenter", "url", redactURL(u), "datacenter", p.dcName,
		"simulator", p.cfg.Simulator)
	return nil
}

// serverURL validates the configuration (an error is final) and returns
// the vCenter URL with credentials, starting the simulator first in
// simulator mode.
func (p *Provider) serverURL(ctx context.Context) (*url.URL, error) {
	if err := p.cfg.Validate(); err != nil {
		return nil, err
	}
	if p.cfg.Simulator {
		sim, err := startSimulator(ctx, "127.0.0.1:0", p.cfg.Username, p.cfg.Password,
			p.simDatacenter(), p.pools, p.cfg.bootDelay(), p.logger)
		if err != nil {
			return nil, err
		}
		p.mu.Lock()
		p.sim = sim
		p.mu.Unlock()
		u := *sim.URL()
		return &u, nil
	}
	u, err := soap.ParseURL(p.cfg.Server)
	if err != nil || u == nil {
		return nil, fmt.Errorf("vsphere: server %q is not a valid address", p.cfg.Server)
	}
	u.User = url.UserPassword(p.cfg.Username, p.cfg.Password)
	return u, nil
}

// simDatacenter is the datacenter the simulator names its only one.
func (p *Provider) simDatacenter() string {
	if p.cfg.Datacenter != "" {
		return p.cfg.Datacenter
	}
	for _, pc := range p.pools {
		if pc.Datacenter != "" {
			return pc.Datacenter
		}
	}
	return ""
}

// connect builds the client: soap.Client → retry of read-only calls on
// network errors → keepalive → re-login and per-call deadline, then logs in.
func (p *Provider) connect(ctx context.Context, u *url.URL, insecure bool) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.callTimeout())
	defer cancel()
	sc := soap.NewClient(u, insecure)
	if err := p.trust(sc, u); err != nil {
		return err
	}
	vc, err := vim25.NewClient(ctx, sc)
	if err != nil && soap.IsCertificateUntrusted(err) {
		return untrustedError(ctx, u, err)
	} else if err != nil {
		return wrapErr("connect to "+redactURL(u), err)
	}
	ka := keepalive.NewHandlerSOAP(newReadOnlyRetry(sc), p.KeepAlive, nil)
	// The login client talks to ka directly: logins restart the keepalive
	// and never recurse into the re-login wrapper.
	lc := &vim25.Client{Client: sc, RoundTripper: ka, ServiceContent: vc.ServiceContent}
	rt := &reloginRT{inner: ka, sm: session.NewManager(lc), user: u.User,
		timeout: p.cfg.callTimeout(), holdoff: p.cfg.loginHoldoff(), logger: p.logger}
	vc.RoundTripper = rt
	if err := rt.login(ctx); err != nil {
		return wrapErr("log in to "+redactURL(u), err)
	}
	p.mu.Lock()
	p.client, p.rt = vc, rt
	p.mu.Unlock()
	return nil
}

func (p *Provider) resolveDefaultDatacenter(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.callTimeout())
	defer cancel()
	if err := p.resolveDatacenters(ctx); err != nil {
		return err
	}
	if p.cfg.Datacenter != "" {
		p.dcName = p.dcPaths[trimSlash(p.cfg.Datacenter)]
		return nil
	}
	dc, err := find.NewFinder(p.vc()).DefaultDatacenter(ctx)
	if err != nil {
		var multi *find.DefaultMultipleFoundError
		if errors.As(err, &multi) {
			p.logger.Warn("several datacenters and no datacenter configured; pools must name theirs")
			return nil
		}
		return wrapErr("find the default datacenter", err)
	}
	p.dcName = trimSlash(dc.InventoryPath)
	return nil
}

// Close stops a background connect (Start), logs out and stops the
// simulator if it runs.
func (p *Provider) Close() error {
	p.mu.Lock()
	stop := p.stopConnect
	p.stopConnect = nil
	p.mu.Unlock()
	if stop != nil {
		stop()
	}
	err := p.logout()
	p.closeSim()
	return err
}

// logout ends the session, if there is one.
func (p *Provider) logout() error {
	p.mu.Lock()
	rt := p.rt
	p.client, p.rt = nil, nil
	p.mu.Unlock()
	var err error
	if rt != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = rt.sm.Logout(ctx)
		cancel()
		if fault.Is(err, &types.NotAuthenticated{}) {
			err = nil // the session had already expired
		}
		if err != nil {
			err = wrapErr("log out", err)
		}
	}
	return err
}

func (p *Provider) closeSim() {
	p.mu.Lock()
	sim := p.sim
	p.sim = nil
	p.mu.Unlock()
	if sim != nil {
		sim.Close()
	}
}

// vc returns the client; nil before Open.
func (p *Provider) vc() *vim25.Client {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.client
}

// simulated reports simulator mode.
func (p *Provider) simulated() bool { return p.cfg.Simulator }

// notConnected is the error of calls made while there is no session: not
// yet (Start is still trying, and says why) or no more (closed).
func (p *Provider) notConnected() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connErr != nil {
		return fmt.Errorf("vsphere: not connected to vCenter (%v): %w", p.connErr, pool.ErrTransient)
	}
	return fmt.Errorf("vsphere: not connected to vCenter: %w", pool.ErrTransient)
}

// begin returns the client and ctx bounded by vsphere_timeout.
func (p *Provider) begin(ctx context.Context) (*vim25.Client, context.Context, context.CancelFunc, error) {
	c := p.vc()
	if c == nil {
		return nil, ctx, func() {}, p.notConnected()
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.callTimeout())
	return c, ctx, cancel, nil
}

// beginIn is begin for a call in a datacenter: it also returns the
// inventory path of datacenter (see datacenter). Call cancel even on error.
func (p *Provider) beginIn(ctx context.Context, datacenter string) (*vim25.Client, context.Context, context.CancelFunc, string, error) {
	c, ctx, cancel, err := p.begin(ctx)
	if err != nil {
		return nil, ctx, cancel, "", err
	}
	dc, err := p.datacenter(datacenter)
	return c, ctx, cancel, dc, err
}

// datacenter returns the inventory path of dc, or the default one.
func (p *Provider) datacenter(dc string) (string, error) {
	if dc = trimSlash(dc); dc != "" {
		if path, ok := p.dcPaths[dc]; ok {
			return path, nil
		}
		return dc, nil
	}
	if p.dcName == "" {
		return "", fmt.Errorf("vsphere: no datacenter configured and several exist: %w", pool.ErrNotFound)
	}
	return p.dcName, nil
}

// findPath returns the object at an inventory path, or ErrNotFound whose
// message reminds that vCenter hides what the user may not read.
func (p *Provider) findPath(ctx context.Context, c *vim25.Client, what, path string) (object.Reference, error) {
	ref, err := findPath(ctx, c, what, path)
	if errors.Is(err, pool.ErrNotFound) && p.cfg.Username != "" && !p.simulated() {
		return nil, fmt.Errorf("%s %q: not found, or not visible to %s (vCenter hides what a user may not read): %w",
			what, path, p.cfg.Username, pool.ErrNotFound)
	}
	return ref, err
}

// findPath returns the object at an inventory path, or ErrNotFound.
func findPath(ctx context.Context, c *vim25.Client, what, path string) (object.Reference, error) {
	ref, err := object.NewSearchIndex(c).FindByInventoryPath(ctx, path)
	if err != nil {
		return nil, wrapErr("find "+what+" "+path, err)
	}
	if ref == nil {
		return nil, notFound(what, path)
	}
	return ref, nil
}

// reloginRT puts vsphere_timeout on every call but the property
// collector's long polls, and logs in again once when a call fails with
// NotAuthenticated (an expired or terminated session), then retries it.
//
// A login refused for its credentials (InvalidLogin) holds every further
// login back for holdoff, across all goroutines: vCenter SSO locks an
// account after 5 failures in 3 minutes by default (and an AD identity
// source applies AD's lockout), so 16 waiting calls must not make 16
// attempts (E5). Calls in the hold-off fail at once with ErrAuth.
type reloginRT struct {
	inner   soap.RoundTripper
	sm      *session.Manager
	user    *url.Userinfo
	timeout time.Duration
	holdoff time.Duration
	now     func() time.Time
	logger  *slog.Logger

	mu       sync.Mutex
	heldTill time.Time     // no login before this (mu)
	heldErr  error         // the refused login's error (mu)
	gen      atomic.Uint64 // bumped on every re-login
	logins   atomic.Int64  // re-logins done, for tests
	attempts atomic.Int64  // login attempts, for tests
}

// RoundTrip implements soap.RoundTripper.
func (r *reloginRT) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	if _, poll := req.(*methods.WaitForUpdatesExBody); !poll {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	gen := r.gen.Load()
	err := r.inner.RoundTrip(ctx, req, res)
	if err == nil || !fault.Is(err, &types.NotAuthenticated{}) {
		return err
	}
	if lerr := r.relogin(ctx, gen); lerr != nil {
		return fmt.Errorf("session expired and re-login failed: %w", lerr)
	}
	// Clear the stale fault before reusing res.
	v := reflect.ValueOf(res).Elem()
	v.Set(reflect.Zero(v.Type()))
	return r.inner.RoundTrip(ctx, req, res)
}

// relogin logs in unless another goroutine already did since gen, or a
// refused login holds logins back.
func (r *reloginRT) relogin(ctx context.Context, gen uint64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.gen.Load() != gen {
		return nil
	}
	r.logger.Warn("vCenter session expired; logging in again")
	if err := r.loginLocked(ctx); err != nil {
		return err
	}
	r.gen.Add(1)
	r.logins.Add(1)
	return nil
}

// login logs in (Open's first login goes through here too).
func (r *reloginRT) login(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.loginLocked(ctx)
}

// loginLocked tries one login unless held back. r.mu must be held.
func (r *reloginRT) loginLocked(ctx context.Context) error {
	now := r.clock()
	if now.Before(r.heldTill) {
		return fmt.Errorf("not logging in to vCenter again before %s: the last login was refused (%v): %w",
			r.heldTill.UTC().Format(time.RFC3339), r.heldErr, pool.ErrAuth)
	}
	r.attempts.Add(1)
	err := r.sm.Login(ctx, r.user)
	if err != nil && fault.Is(err, &types.InvalidLogin{}) {
		r.heldTill, r.heldErr = now.Add(r.holdoff), err
		r.logger.Error("vCenter refused the login; not trying again before the hold-off ends: repeated failures may lock the service account",
			"user", r.user.Username(), "next_try", r.heldTill.UTC().Format(time.RFC3339), "holdoff", r.holdoff,
			"fix", "correct the password (VMPOOLER_VSPHERE_PASSWORD or [providers.vsphere] password) and restart")
	}
	return err
}

func (r *reloginRT) clock() time.Time {
	if r.now != nil {
		return r.now()
	}
	return time.Now()
}

func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	return c.String()
}

func trimSlash(s string) string {
	for len(s) > 0 && s[0] == '/' {
		s = s[1:]
	}
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
