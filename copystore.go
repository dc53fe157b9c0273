package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/vmpooler/vmpooler/store"
)

// runCopyStore moves a stopped pooler's state between databases: from its
// bbolt file to etcd (scaling out) or back (returning to one machine). It
// refuses a destination that holds any record, copies everything (the
// instance id too, so the pooler's VMs stay its own) and runs the store's
// check on the destination afterwards.
func runCopyStore(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("vmpooler copy-store", "vmpooler copy-store -from DB -to DB [-config F]", stderr)
	from := fs.String("from", "", "the database to copy: a bbolt file, or etcd://host:2379,.../prefix")
	to := fs.String("to", "", "the database to fill: a new bbolt file, or an etcd:// prefix that holds nothing")
	path := fs.String("config", "", "configuration file whose [etcd] section (TLS, timeouts) applies to etcd:// databases")
	if err := parseArgs(fs, args, "copy-store", ""); err != nil {
		return err
	} else if *from == "" || *to == "" {
		return errors.New("copy-store: -from and -to are required")
	}
	cfg := &Config{}
	if *path != "" {
		var err error
		if cfg, err = LoadConfig(*path); err != nil {
			return err
		}
	}
	src, err := openCopyEnd(cfg, *from, false)
	if err != nil {
		return fmt.Errorf("copy-store: -from: %w", err)
	}
	defer src.Close()
	dst, err := openCopyEnd(cfg, *to, true)
	if err != nil {
		return fmt.Errorf("copy-store: -to: %w", err)
	}
	defer dst.Close()
	if err := src.Check(); err != nil {
		return fmt.Errorf("copy-store: the source does not pass its check, nothing copied: %w", err)
	}
	res, err := src.CopyTo(dst)
	if err != nil {
		return fmt.Errorf("copy-store: %w", err)
	}
	if err := dst.Check(); err != nil {
		return fmt.Errorf("copy-store: the copy does not pass its check: %w", err)
	}
	buckets := make([]string, 0, len(res))
	total := 0
	for b, n := range res {
		buckets = append(buckets, b)
		total += n
	}
	sort.Strings(buckets)
	fmt.Fprintf(stdout, "copied %d records from %s to %s (instance %s); the copy passes its check\n", total, src.Path, dst.Path, src.Instance())
	for _, b := range buckets {
		fmt.Fprintf(stdout, "  %-16s %d\n", b, res[b])
	}
	return nil
}

// openCopyEnd opens one end of a copy: an etcd:// URL with cfg's [etcd]
// settings, or a bbolt file (which must exist as a source, and must not
// as a destination: a copy never lands on a file that holds a database).
func openCopyEnd(cfg *Config, where string, dest bool) (*store.Store, error) {
	if isEtcdURL(where) {
		c := *cfg
		c.Global.Database = where
		return openEtcdStore(&c)
	}
	_, err := os.Stat(where)
	if dest && err == nil {
		return nil, fmt.Errorf("%s exists: copy into a new file", where)
	} else if !dest && err != nil {
		return nil, err
	}
	st := store.New(where)
	if err := st.Open(); errors.Is(err, store.ErrInUse) {
		return nil, fmt.Errorf("%w: stop the pooler first", err)
	} else if err != nil {
		return nil, err
	}
	return st, nil
}
