package vsphere

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"

	"github.com/vmpooler/vmpooler/pool"
)

var bench struct {
	once sync.Once
	p    *Provider
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bench.p != nil {
		_ = bench.p.Close()
	}
	os.Exit(code)
}

// benchProvider opens a simulator whose folder "bench" holds n VMs, built
// once per test binary through an in-memory client (CreateVM_Task, 16 at
// a time), which is much faster than cloning.
func benchProvider(b *testing.B, n int) *Provider {
	bench.once.Do(func() {
		pools := []pool.PoolConfig{{Name: "bench", Template: "templates/bench", Folder: "bench", Datacenter: "dc1"}}
		p := New(Config{Simulator: true, Datacenter: "dc1"}, pools, nil)
		ctx := context.Background()
		if bench.err = p.Open(ctx); bench.err != nil {
			return
		}
		bench.p = p
		bench.err = fillFolder(ctx, p, "dc1/vm/bench", n)
	})
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.p
}

func fillFolder(ctx context.Context, p *Provider, folderPath string, n int) error {
	c, err := vim25.NewClient(ctx, p.simModel().Service)
	if err != nil {
		return err
	}
	ref, err := findPath(ctx, c, "folder", folderPath)
	if err != nil {
		return err
	}
	folder := ref.(*object.Folder)
	f := find.NewFinder(c)
	dc, err := f.Datacenter(ctx, "dc1")
	if err != nil {
		return err
	}
	f.SetDatacenter(dc)
	rp, err := resourcePool(ctx, f, dc, "")
	if err != nil {
		return err
	}
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			spec := types.VirtualMachineConfigSpec{
				Name:    fmt.Sprintf("bench%04d", i),
				GuestId: string(types.VirtualMachineGuestOsIdentifierOtherGuest),
				Files:   &types.VirtualMachineFileInfo{VmPathName: "[LocalDS_0]"},
			}
			task, err := folder.CreateVM(ctx, spec, rp, nil)
			if err != nil {
				return err
			}
			return task.Wait(ctx)
		})
	}
	return g.Wait()
}

// BenchmarkList1000 lists a folder of 1,000 VMs, one List call per op.
func BenchmarkList1000(b *testing.B) {
	p := benchProvider(b, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		vms, err := p.List(ctx, "dc1", "bench")
		if err != nil {
			b.Fatal(err)
		}
		if len(vms) != 1000 {
			b.Fatalf("listed %d VMs, want 1000", len(vms))
		}
	}
}
