package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
	"github.com/vmpooler/vmpooler/vsphere"
)

// runSimulator serves a standalone vCenter simulator holding the templates
// and folders of the config's pools, so a pooler can be restarted while
// "vCenter" keeps its state.
func runSimulator(ctx context.Context, args []string, stderr io.Writer) error {
	var listen, user, pass string
	var bootDelay time.Duration
	cfg, err := loadFlags("vmpooler simulator", "vmpooler simulator -listen ADDR -config F [-username U -password P]", args, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&listen, "listen", "127.0.0.1:8989", "address to serve the simulator on")
		fs.StringVar(&user, "username", "", "user name the simulator accepts (default user)")
		fs.StringVar(&pass, "password", "", "password the simulator accepts (default pass)")
		fs.DurationVar(&bootDelay, "boot-delay", time.Second, "time a VM takes to report a guest IP after power-on")
	})
	if err != nil {
		return err
	}
	return vsphere.Serve(ctx, listen, user, pass, cfg.Pools, bootDelay, newLogger(stderr, cfg.Global.LogLevel))
}

// runCheck checks the database file read-only: bbolt's consistency check
// and the store's invariants; with -list-vms it prints every live VM. It
// never creates a file: a missing database is an error.
func runCheck(args []string, stdout, stderr io.Writer) error {
	var list bool
	var file string
	cfg, err := loadFlags("vmpooler check", "vmpooler check -config F [-file DB] [-list-vms]", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&list, "list-vms", false, "print the hostname of every live VM")
		fs.StringVar(&file, "file", "", "check this database file (a backup) instead of the configured one")
	})
	if err != nil {
		return err
	}
	if cfg.onEtcd() && file == "" {
		return checkEtcd(cfg, list, stdout)
	}
	path := cfg.Global.Database
	if file != "" {
		path = file
	}
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("check: %w", err)
	}
	if err := store.VerifyFile(path); errors.Is(err, store.ErrCorrupt) {
		return err // names the file and what to do
	} else if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if list {
		st := store.New(path)
		if err := st.Open(); err != nil {
			return err
		}
		defer st.Close()
		return listVMs(cfg, st, stdout)
	}
	fmt.Fprintf(stdout, "%s: ok\n", path)
	return nil
}

// checkEtcd checks the store's invariants on etcd, in one read at one
// revision (etcd checks its own pages: etcdctl check, defrag, hashkv).
func checkEtcd(cfg *Config, list bool, stdout io.Writer) error {
	st, err := openEtcdStore(cfg)
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		return err
	}
	if list {
		return listVMs(cfg, st, stdout)
	}
	fmt.Fprintf(stdout, "%s: ok\n", cfg.databaseName())
	return nil
}

// listVMs prints the hostname of every live VM of the configured pools.
func listVMs(cfg *Config, st *store.Store, stdout io.Writer) error {
	for _, p := range cfg.Pools {
		vms, err := st.ListPool(p.Name)
		if err != nil {
			return err
		}
		for _, vm := range vms {
			fmt.Fprintln(stdout, vm.Hostname)
		}
	}
	return nil
}

// runInventory prints the name of every VM in every pool's folder.
func runInventory(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var owners bool
	cfg, err := loadFlags("vmpooler inventory", "vmpooler inventory -config F [-owners]", args, stderr, func(fs *flag.FlagSet) {
		fs.BoolVar(&owners, "owners", false, "print each VM's ownership marker too: name, instance id, pool (\"-\" when unmarked)")
	})
	if err != nil {
		return err
	}
	if cfg.Providers.Vsphere.Simulator && cfg.Providers.Fake == nil {
		fmt.Fprintln(stderr, "vmpooler inventory: simulator = true: listing a FRESH in-process simulator, which holds only the pools' templates, not the VMs of a running pooler (to inspect those, run `vmpooler simulator` and point [providers.vsphere] server at it)")
	}
	prov, closeProv, err := openProvider(ctx, cfg, newLogger(stderr, cfg.Global.LogLevel))
	if err != nil {
		return err
	}
	defer closeProv()
	for _, p := range cfg.Pools {
		vms, err := prov.List(ctx, p.Datacenter, p.Folder)
		if errors.Is(err, pool.ErrNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("pool %s: %w", p.Name, err)
		}
		for _, vm := range vms {
			if !owners {
				fmt.Fprintln(stdout, vm.Name)
				continue
			}
			inst, pl := vm.Owner.Instance, vm.Owner.Pool
			if inst == "" {
				inst, pl = "-", "-"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", vm.Name, inst, pl)
		}
	}
	return nil
}
