package vsphere

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// guestAgent stands in for the guest OS and VMware Tools of simulated
// VMs, which vcsim does not have: bootDelay after a VM powers on it sets
// guest.toolsRunningStatus, guest.ipAddress (a stable 10.x.y.z per VM) and
// guest.hostName (the VM's name); on power off it clears them.
//
// It is a simulator.RegisterObject handler: the registry calls
// UpdateObject for every property change, from the goroutine (and lock)
// of the task making it. The guest update itself runs later in its own
// goroutine under the VM's lock, as vcsim's own background updates do.
type guestAgent struct {
	base  *simulator.Context
	delay time.Duration

	mu     sync.Mutex
	closed bool
	gen    map[types.ManagedObjectReference]uint64
	timers map[types.ManagedObjectReference]*time.Timer
	ips    map[types.ManagedObjectReference]string
	next   uint32
	wg     sync.WaitGroup
}

func newGuestAgent(base *simulator.Context, delay time.Duration) *guestAgent {
	return &guestAgent{
		base:   base,
		delay:  delay,
		gen:    make(map[types.ManagedObjectReference]uint64),
		timers: make(map[types.ManagedObjectReference]*time.Timer),
		ips:    make(map[types.ManagedObjectReference]string),
	}
}

// Reference identifies the handler in the registry (not an inventory object).
func (a *guestAgent) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "VmpoolerGuestAgent", Value: "guest-agent"}
}

// PutObject implements simulator.RegisterObject.
func (a *guestAgent) PutObject(*simulator.Context, mo.Reference) {}

// RemoveObject forgets a destroyed VM.
func (a *guestAgent) RemoveObject(_ *simulator.Context, ref types.ManagedObjectReference) {
	if ref.Type != "VirtualMachine" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if t := a.timers[ref]; t != nil && t.Stop() {
		a.wg.Done()
	}
	delete(a.timers, ref)
	delete(a.gen, ref)
	delete(a.ips, ref)
}

// UpdateObject schedules a boot on power on and a shutdown otherwise.
func (a *guestAgent) UpdateObject(_ *simulator.Context, obj mo.Reference, changes []types.PropertyChange) {
	vm, ok := obj.(*mo.VirtualMachine)
	if !ok {
		return
	}
	for _, ch := range changes {
		if ch.Name != "runtime.powerState" {
			continue
		}
		on := fmt.Sprint(ch.Val) == string(types.VirtualMachinePowerStatePoweredOn)
		a.schedule(vm.Self, on)
	}
}

func (a *guestAgent) schedule(ref types.ManagedObjectReference, on bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.gen[ref]++
	gen := a.gen[ref]
	if t := a.timers[ref]; t != nil && t.Stop() {
		a.wg.Done()
	}
	delay := a.delay
	if !on {
		delay = 0
	}
	a.wg.Add(1)
	a.timers[ref] = time.AfterFunc(delay, func() {
		defer a.wg.Done()
		a.apply(ref, gen, on)
	})
}

// apply sets (on) or clears the guest identity if nothing changed since.
func (a *guestAgent) apply(ref types.ManagedObjectReference, gen uint64, on bool) {
	a.mu.Lock()
	if a.closed || a.gen[ref] != gen {
		a.mu.Unlock()
		return
	}
	ip := a.ips[ref]
	if ip == "" && on {
		a.next++
		n := a.next
		ip = fmt.Sprintf("10.%d.%d.%d", 1+(n/64516)%254, (n/254)%254+1, n%254+1)
		a.ips[ref] = ip
	}
	a.mu.Unlock()

	svm, ok := a.base.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return
	}
	ctx := *a.base // a fresh lock owner for this goroutine
	ctx.Context = context.Background()
	ctx.WithLock(svm, func() {
		if on != (svm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn) || svm.Guest == nil {
			return
		}
		ctx.Update(svm, guestChanges(svm, ip, on))
	})
}

func guestChanges(svm *simulator.VirtualMachine, ip string, on bool) []types.PropertyChange {
	host, tools, state := svm.Name, types.VirtualMachineToolsRunningStatusGuestToolsRunning, "running"
	toolsStatus := types.VirtualMachineToolsStatusToolsOk
	if !on {
		ip, host, tools, state = "", "", types.VirtualMachineToolsRunningStatusGuestToolsNotRunning, "notRunning"
		toolsStatus = types.VirtualMachineToolsStatusToolsNotRunning
	}
	changes := []types.PropertyChange{
		{Name: "guest.ipAddress", Val: ip},
		{Name: "guest.hostName", Val: host},
		{Name: "guest.toolsRunningStatus", Val: string(tools)},
		{Name: "guest.toolsStatus", Val: toolsStatus},
		{Name: "guest.guestState", Val: state},
	}
	if svm.Summary.Guest != nil {
		changes = append(changes,
			types.PropertyChange{Name: "summary.guest.ipAddress", Val: ip},
			types.PropertyChange{Name: "summary.guest.hostName", Val: host},
			types.PropertyChange{Name: "summary.guest.toolsRunningStatus", Val: string(tools)},
		)
	}
	if len(svm.Guest.Net) > 0 {
		nics := append([]types.GuestNicInfo(nil), svm.Guest.Net...)
		nics[0].IpAddress = nil
		if ip != "" {
			nics[0].IpAddress = []string{ip}
		}
		changes = append(changes, types.PropertyChange{Name: "guest.net", Val: nics})
	}
	return changes
}

// stop cancels pending boots and waits for running ones.
func (a *guestAgent) stop() {
	a.mu.Lock()
	a.closed = true
	for ref, t := range a.timers {
		if t.Stop() {
			a.wg.Done()
		}
		delete(a.timers, ref)
	}
	a.mu.Unlock()
	a.wg.Wait()
}
