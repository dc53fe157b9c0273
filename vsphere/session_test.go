package vsphere

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/internal/clocktest"
	"github.com/vmpooler/vmpooler/pool"
)

// E5: after the session ends and the re-login is refused (a changed
// password), 16 concurrent calls make one login attempt, not 16; the next
// attempt comes only after the hold-off.
func TestLoginHoldoff(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	clk := clocktest.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	p.rt.now = clk.Now
	terminate(t, p)
	svc := p.simModel().Service
	svc.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: "Login", ObjectType: "*", ObjectName: "*", Probability: 1, Enabled: true,
		FaultType: simulator.FaultTypeCustom, Fault: &types.InvalidLogin{},
	})
	logins := func() int64 { n, _ := svc.GetFaultStats()["rule_0_count"].(int64); return n }
	burst := func() {
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				if _, err := p.List(ctxT(t), pc.Datacenter, pc.Folder); !errors.Is(err, pool.ErrAuth) {
					t.Errorf("List: %v, want ErrAuth", err)
				}
			})
		}
		wg.Wait()
	}
	burst()
	if n := logins(); n != 1 {
		t.Fatalf("16 concurrent calls made %d login attempts, want 1", n)
	}
	clk.Advance(4 * time.Minute)
	burst()
	if n := logins(); n != 1 {
		t.Fatalf("within the 5 minute hold-off: %d login attempts, want still 1", n)
	}
	clk.Advance(time.Minute + time.Second)
	burst()
	if n := logins(); n != 2 {
		t.Fatalf("after the hold-off: %d login attempts, want 2", n)
	}
	svc.ClearFaultRules() // the password is fixed
	clk.Advance(5*time.Minute + time.Second)
	if _, err := p.List(ctxT(t), pc.Datacenter, pc.Folder); err != nil {
		t.Fatalf("List once the login works: %v", err)
	}
}

// sessionKillerRT ends the provider's session just before the first
// WaitForUpdatesEx, as a session that expires while a clone runs.
type sessionKillerRT struct {
	soap.RoundTripper
	kill func()
	done atomic.Bool
}

func (s *sessionKillerRT) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	if _, ok := req.(*methods.WaitForUpdatesExBody); ok && s.done.CompareAndSwap(false, true) {
		s.kill()
	}
	return s.RoundTripper.RoundTrip(ctx, req, res)
}

// E4: the session ends while a clone task is waited for. The re-login
// makes a new session without the old wait's property collector; the
// clone, which succeeded, must not be reported not found.
func TestTaskWaitSurvivesRelogin(t *testing.T) {
	pc := testPools()[0]
	p := MustOpenSim(t, testPools())
	killer := &sessionKillerRT{RoundTripper: p.rt.inner, kill: func() { terminate(t, p) }}
	p.rt.inner = killer
	if err := p.Clone(ctxT(t), specFor(pc, "survivor")); err != nil {
		t.Fatalf("Clone across a re-login: %v", err)
	}
	if !killer.done.Load() || p.rt.logins.Load() != 1 {
		t.Fatalf("the session was not ended mid-wait (killed %v, re-logins %d)", killer.done.Load(), p.rt.logins.Load())
	}
	vms, err := p.List(ctxT(t), pc.Datacenter, pc.Folder)
	if err != nil || len(vms) != 1 || vms[0].Name != "survivor" {
		t.Fatalf("List: %v, %v; want the clone", vms, err)
	}
}
