package pool

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// FakeProvider is an in-memory Provider for tests of this and other
// packages. By default clones are instant: the VM appears in List powered
// on, with tools running and an IP, and passes Ready. Setters make clones
// fail, block (slow), or boot without an IP; Vanish removes a VM behind the
// manager's back; SetDown makes every call fail as an unreachable vCenter
// would. It is safe for concurrent use.
type FakeProvider struct {
	mu        sync.Mutex
	vms       map[string]*FakeVM
	ipSeq     int
	cloneErr  func(CloneSpec) error
	down      error
	listHook  func(folder string) error
	jobErr    error
	noteErr   error
	jobDone   bool // jobErr comes after the work is done
	noBoot    bool
	gate      chan struct{} // non-nil: clones wait for it to close
	readyFunc func(VMInfo) (bool, string)
	calls     map[string]int
	destroyed []string
	refused   []string // destroys refused with ErrForeign
	cloning   int
}

// FakeVM is one VM held by a FakeProvider.
type FakeVM struct {
	Info       VMInfo
	Pool       string
	Folder     string
	Datacenter string
	Template   string
	Ready      *bool // nil: ready when it has an IP
	Snapshots  []string
	Memory     []bool // per snapshot: taken with memory
	Disks      []int
	DiskIDs    []string // per disk: the id AddDisk was given
	Notes      map[string]string
}

var _ Provider = (*FakeProvider)(nil)

// NewFakeProvider returns an empty FakeProvider with instant clones.
func NewFakeProvider() *FakeProvider {
	return &FakeProvider{vms: make(map[string]*FakeVM), calls: make(map[string]int)}
}

// SetCloneError makes Clone return f(spec) when f returns an error (no VM
// is created). Nil restores normal clones.
func (f *FakeProvider) SetCloneError(fn func(CloneSpec) error) {
	set(f, &f.cloneErr, fn)
}

// SetDown makes every call return err (wrap ErrTransient to mimic an
// unreachable vCenter); nil brings the provider back.
func (f *FakeProvider) SetDown(err error) {
	set(f, &f.down, err)
}

// SetListHook makes List return fn(folder) when that is an error (for
// example a folder that does not exist); nil removes the hook.
func (f *FakeProvider) SetListHook(fn func(folder string) error) {
	set(f, &f.listHook, fn)
}

// SetJobError makes Snapshot, Revert and AddDisk return err. With
// SetJobDoneAnyway they first do the work, as a job whose wait was cut
// short after vSphere had started its task.
func (f *FakeProvider) SetJobError(err error) {
	set(f, &f.jobErr, err)
}

// SetAnnotateError makes Annotate return err (nil: succeed).
func (f *FakeProvider) SetAnnotateError(err error) {
	set(f, &f.noteErr, err)
}

// SetJobDoneAnyway makes the job error of SetJobError come after the
// snapshot or disk was made (on true) or instead of it (false, default).
func (f *FakeProvider) SetJobDoneAnyway(on bool) {
	set(f, &f.jobDone, on)
}

// SetInstantBoot chooses whether new clones get an IP at once (default
// true). Without it, Boot gives a VM its IP.
func (f *FakeProvider) SetInstantBoot(on bool) {
	set(f, &f.noBoot, !on)
}

// SetReadyFunc replaces the default ready check (ready when the VM has an
// IP). A per-VM SetReady still wins.
func (f *FakeProvider) SetReadyFunc(fn func(VMInfo) (bool, string)) {
	set(f, &f.readyFunc, fn)
}

// HoldClones makes later clones block (slow clones) until ReleaseClones or
// their context ends.
func (f *FakeProvider) HoldClones() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gate == nil {
		f.gate = make(chan struct{})
	}
}

// ReleaseClones lets held clones finish and makes later clones instant.
func (f *FakeProvider) ReleaseClones() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gate != nil {
		close(f.gate)
		f.gate = nil
	}
}

// Add puts a VM into a folder, as if created outside the pooler.
func (f *FakeProvider) Add(datacenter, folder string, info VMInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vms[info.Name] = &FakeVM{Info: info, Folder: folder, Datacenter: datacenter}
}

// Vanish deletes a VM without telling anyone.
func (f *FakeProvider) Vanish(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.vms, name)
}

// Boot gives a VM an IP (for SetInstantBoot(false)).
func (f *FakeProvider) Boot(name string) {
	f.update(name, func(vm *FakeVM) {
		if vm.Info.IP == "" {
			f.boot(vm)
		}
	})
}

// SetReady forces a VM's ready-check result.
func (f *FakeProvider) SetReady(name string, ready bool) {
	f.update(name, func(vm *FakeVM) { vm.Ready = &ready })
}

// SetGuestHostname sets the hostname a VM's guest reports.
func (f *FakeProvider) SetGuestHostname(name, guest string) {
	f.update(name, func(vm *FakeVM) { vm.Info.GuestHostname = guest })
}

// VM returns a copy of a VM.
func (f *FakeProvider) VM(name string) (FakeVM, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vm, ok := f.vms[name]
	if !ok {
		return FakeVM{}, false
	}
	c := *vm
	c.Snapshots = slices.Clone(vm.Snapshots)
	c.Memory = slices.Clone(vm.Memory)
	c.Disks = slices.Clone(vm.Disks)
	c.DiskIDs = slices.Clone(vm.DiskIDs)
	c.Notes = maps.Clone(vm.Notes)
	return c, true
}

// Names returns the sorted names of the VMs in a folder ("" = all).
func (f *FakeProvider) Names(folder string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for name, vm := range f.vms {
		if folder == "" || vm.Folder == folder {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// Destroyed returns the names destroyed so far, in order.
func (f *FakeProvider) Destroyed() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.destroyed)
}

// Refused returns the names whose destroy was refused as foreign, in order.
func (f *FakeProvider) Refused() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.refused)
}

// Calls returns how many times a method ("Clone", "List", ...) was called.
func (f *FakeProvider) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// Cloning returns the number of clones in progress.
func (f *FakeProvider) Cloning() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cloning
}

// set stores v in field, one of f's fields, under f's lock.
func set[T any](f *FakeProvider, field *T, v T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*field = v
}

// update runs fn on the named VM under f's lock; a VM that does not exist
// is left alone.
func (f *FakeProvider) update(name string, fn func(vm *FakeVM)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if vm, ok := f.vms[name]; ok {
		fn(vm)
	}
}

// boot gives vm the next IP, with its tools running. f.mu must be held.
func (f *FakeProvider) boot(vm *FakeVM) {
	f.ipSeq++
	vm.Info.IP = fmt.Sprintf("10.%d.%d.%d", f.ipSeq>>16&255, f.ipSeq>>8&255, f.ipSeq&255)
	vm.Info.ToolsRunning = true
}

// enter counts a call and returns the down error, if any. f.mu must be held.
func (f *FakeProvider) enter(method string) error {
	f.calls[method]++
	return f.down
}

// Clone implements Provider.
func (f *FakeProvider) Clone(ctx context.Context, spec CloneSpec) error {
	f.mu.Lock()
	if err := f.enter("Clone"); err != nil {
		f.mu.Unlock()
		return err
	}
	gate := f.gate
	f.cloning++
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.cloning--
		f.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return fmt.Errorf("clone %s: %w", spec.Name, ctx.Err())
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cloneErr != nil {
		if err := f.cloneErr(spec); err != nil {
			return err
		}
	}
	if _, ok := f.vms[spec.Name]; ok {
		return fmt.Errorf("clone %s: %w", spec.Name, ErrExists)
	}
	vm := &FakeVM{
		Info: VMInfo{Name: spec.Name, PoweredOn: true, GuestHostname: spec.Name,
			Owner: Owner{Instance: spec.Instance, Pool: spec.Pool}},
		Pool:       spec.Pool,
		Folder:     spec.Folder,
		Datacenter: spec.Datacenter,
		Template:   spec.Template,
	}
	if !f.noBoot {
		f.boot(vm)
	}
	f.vms[spec.Name] = vm
	return nil
}

// List implements Provider.
func (f *FakeProvider) List(ctx context.Context, datacenter, folder string) ([]VMInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("List"); err != nil {
		return nil, err
	} else if f.listHook != nil {
		if err := f.listHook(folder); err != nil {
			return nil, err
		}
	}
	out := make([]VMInfo, 0, 64)
	for _, vm := range f.vms {
		if vm.Folder == folder && vm.Datacenter == datacenter {
			out = append(out, vm.Info)
		}
	}
	return out, nil
}

// Ready implements Provider.
func (f *FakeProvider) Ready(ctx context.Context, info VMInfo, check string) (bool, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.enter("Ready"); err != nil {
		return false, "", err
	}
	vm, ok := f.vms[info.Name]
	if !ok {
		return false, "", fmt.Errorf("vm %s: %w", info.Name, ErrNotFound)
	}
	if vm.Ready != nil {
		if *vm.Ready {
			return true, "", nil
		}
		return false, "ready check failed", nil
	}
	if f.readyFunc != nil {
		ok, why := f.readyFunc(vm.Info)
		return ok, why, nil
	}
	if vm.Info.IP == "" {
		return false, "no guest IP", nil
	}
	return true, "", nil
}

// lookup returns a VM by location. f.mu must be held.
func (f *FakeProvider) lookup(method string, loc Location) (*FakeVM, error) {
	if err := f.enter(method); err != nil {
		return nil, err
	}
	vm, ok := f.vms[loc.Name]
	if !ok || (loc.Folder != "" && vm.Folder != loc.Folder) {
		return nil, fmt.Errorf("vm %s/%s: %w", loc.Folder, loc.Name, ErrNotFound)
	}
	return vm, nil
}

// withVM runs fn on the VM at loc with the fake locked, after the lookup
// (which counts the call of method).
func (f *FakeProvider) withVM(method string, loc Location, fn func(vm *FakeVM) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	vm, err := f.lookup(method, loc)
	if err != nil {
		return err
	}
	return fn(vm)
}

// job runs a job on the VM at loc as vSphere's snapshot and disk jobs
// run: success at once when exists says its result is there already;
// else a job error (SetJobError) fails it before do, or after do with
// SetJobDoneAnyway.
func (f *FakeProvider) job(method string, loc Location, exists func(vm *FakeVM) bool, do func(vm *FakeVM)) error {
	return f.withVM(method, loc, func(vm *FakeVM) error {
		if exists(vm) {
			return nil
		} else if f.jobErr != nil && !f.jobDone {
			return f.jobErr
		}
		do(vm)
		return f.jobErr
	})
}

// Destroy implements Provider: like vsphere's, it refuses (ErrForeign) a
// VM that loc.Mine does not accept.
func (f *FakeProvider) Destroy(ctx context.Context, loc Location) error {
	return f.withVM("Destroy", loc, func(vm *FakeVM) error {
		if !loc.Mine(vm.Info.Owner) {
			f.refused = append(f.refused, loc.Name)
			return fmt.Errorf("destroy %s: marker %+v: %w", loc.Name, vm.Info.Owner, ErrForeign)
		}
		delete(f.vms, loc.Name)
		f.destroyed = append(f.destroyed, loc.Name)
		return nil
	})
}

// Snapshot implements Provider: like vSphere's, a snapshot of that name
// that exists already is success.
func (f *FakeProvider) Snapshot(ctx context.Context, loc Location, name string, memory bool) error {
	return f.job("Snapshot", loc, func(vm *FakeVM) bool { return slices.Contains(vm.Snapshots, name) }, func(vm *FakeVM) {
		vm.Snapshots = append(vm.Snapshots, name)
		vm.Memory = append(vm.Memory, memory)
	})
}

// Revert implements Provider.
func (f *FakeProvider) Revert(ctx context.Context, loc Location, name string) error {
	return f.withVM("Revert", loc, func(vm *FakeVM) error {
		if f.jobErr != nil {
			return f.jobErr
		} else if !slices.Contains(vm.Snapshots, name) {
			return fmt.Errorf("snapshot %s of %s: %w", name, loc.Name, ErrNotFound)
		}
		return nil
	})
}

// AddDisk implements Provider: like vSphere's, a disk with that id that
// exists already is success.
func (f *FakeProvider) AddDisk(ctx context.Context, loc Location, sizeGB int, id string) error {
	return f.job("AddDisk", loc, func(vm *FakeVM) bool { return slices.Contains(vm.DiskIDs, id) }, func(vm *FakeVM) {
		vm.Disks = append(vm.Disks, sizeGB)
		vm.DiskIDs = append(vm.DiskIDs, id)
	})
}

// Annotate implements Provider.
func (f *FakeProvider) Annotate(ctx context.Context, loc Location, values map[string]string) error {
	return f.withVM("Annotate", loc, func(vm *FakeVM) error {
		if f.noteErr != nil {
			return f.noteErr
		}
		if vm.Notes == nil {
			vm.Notes = make(map[string]string)
		}
		maps.Copy(vm.Notes, values)
		// List returns the attributes, as vSphere's custom values are.
		vm.Info.Attributes = maps.Clone(vm.Notes)
		return nil
	})
}
