package main

import (
	"path"

	"github.com/vmpooler/vmpooler/pool"
)

// newFakeProvider returns the in-memory provider of [providers.fake],
// holding its vms: each in the datacenter of the pool whose folder it is
// in, powered on, with no ownership marker.
func newFakeProvider(cfg *Config) *pool.FakeProvider {
	f := pool.NewFakeProvider()
	for _, p := range cfg.Providers.Fake.VMs {
		dir, name := path.Split(p)
		dir = path.Clean(dir)
		dc := ""
		for _, pc := range cfg.Pools {
			if path.Clean(pc.Folder) == dir {
				dc = pc.Datacenter
			}
		}
		f.Add(dc, dir, pool.VMInfo{Name: name, PoweredOn: true, ToolsRunning: true, Path: p})
	}
	return f
}
