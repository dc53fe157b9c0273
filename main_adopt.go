package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/vmpooler/vmpooler/store"
)

// runAdopt records, in this pooler's database, that the VMs of another
// pooler instance are this pooler's from its next start on: an operator
// who lost a database (or replaced it) takes the VMs the old one made back
// deliberately. The pooler must be stopped (it holds the file). At the next
// start, each such VM in a pool folder that was checked out there (it has
// the vmpooler_checkout attribute the pooler sets on running VMs) becomes
// running here and lives out its lifetime; the others (ready or pending
// there) are destroyed as orphans and the pool refills.
func runAdopt(args []string, stdout, stderr io.Writer) error {
	cfg, instance, err := loadRequired("adopt", "vmpooler adopt -config F -instance ID", args, stderr,
		"instance", "the instance id of the pooler whose VMs to take over (from the \"foreign vm\" log lines or /status)")
	if err != nil {
		return err
	}
	path := cfg.databaseName()
	if !cfg.onEtcd() {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("adopt: database %s: %w (start the pooler once to create it, stop it, then adopt)", path, err)
		}
	}
	st, err := openDatabase(cfg, nil)
	if errors.Is(err, store.ErrInUse) {
		return fmt.Errorf("adopt: %w (stop the pooler first)", err)
	} else if err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	defer st.Close()
	if err := st.Adopt(instance); err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	fmt.Fprintf(stdout, "%s: instance %s adopted by instance %s; at the next start its checked-out VMs become running here and its other VMs are destroyed and refilled\n",
		path, instance, st.Instance())
	return nil
}
