package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
	"github.com/vmpooler/vmpooler/store/etcd"
)

// EtcdConfig is the [etcd] section: the state on etcd instead of the bbolt
// file, for several pooler replicas. [config] database = "etcd://h1:2379,
// h2:2379/prefix" says the same in one line (its endpoints and prefix win
// over the section's); the section adds TLS, timeouts and limits. The user
// name and password come from VMPOOLER_ETCD_USERNAME and
// VMPOOLER_ETCD_PASSWORD only, never from the file.
type EtcdConfig struct {
	Endpoints      []string `toml:"endpoints"`       // host:port of each member
	Prefix         string   `toml:"prefix"`          // default "vmpooler/"
	CAFile         string   `toml:"ca_file"`         // turns TLS on (as do cert_file/key_file)
	CertFile       string   `toml:"cert_file"`       // client certificate
	KeyFile        string   `toml:"key_file"`        // its key
	DialTimeout    int      `toml:"dial_timeout"`    // seconds, default 5
	RequestTimeout int      `toml:"request_timeout"` // seconds, default 5: bounds every etcd call
	// MaxTxnOps must not exceed the etcd server's --max-txn-ops (its
	// default is 128): it bounds one transaction, so it also bounds how
	// many VMs one checkout can take (about a third of it).
	MaxTxnOps int `toml:"max_txn_ops"`
	// CheckoutWindow: a checkout takes any of the oldest count+window
	// ready VMs of a pool at random (default 4), so checkouts on several
	// replicas rarely collide on one VM; 0 is strictly oldest first.
	CheckoutWindow *int `toml:"checkout_window"`
	// Replica names this pooler among the replicas (default: the host
	// name and the API's address); /status and /metrics show who leads.
	Replica string `toml:"replica"`
	// LeaseTTL is the leader's lease in seconds (default 5): a replica
	// takes over this long after the leader stopped renewing it, and a
	// leader stops acting after 2/3 of it without a renewal.
	LeaseTTL int `toml:"lease_ttl"`

	username, password string // from the environment
}

// defaultCheckoutWindow is [etcd] checkout_window's default.
const defaultCheckoutWindow = 4

// onEtcd reports whether the configuration puts the state on etcd.
func (c *Config) onEtcd() bool {
	return isEtcdURL(c.Global.Database) || (c.Etcd != nil && len(c.Etcd.Endpoints) > 0)
}

func isEtcdURL(s string) bool {
	return strings.HasPrefix(s, "etcd://") || strings.HasPrefix(s, "etcds://")
}

// etcdConfig is the etcd client configuration of c (onEtcd must be true).
func (c *Config) etcdConfig() (etcd.Config, error) {
	var ec etcd.Config
	if isEtcdURL(c.Global.Database) {
		var err error
		if ec, err = etcd.ParseURL(c.Global.Database); err != nil {
			return ec, fmt.Errorf("[config] database: %w", err)
		}
	}
	if s := c.Etcd; s != nil {
		if len(ec.Endpoints) == 0 {
			ec.Endpoints, ec.Prefix = s.Endpoints, s.Prefix
		}
		ec.CAFile, ec.CertFile, ec.KeyFile = s.CAFile, s.CertFile, s.KeyFile
		ec.DialTimeout = time.Duration(s.DialTimeout) * time.Second
		ec.RequestTimeout = time.Duration(s.RequestTimeout) * time.Second
		ec.MaxTxnOps = s.MaxTxnOps
		ec.Username, ec.Password = s.username, s.password
	}
	return ec, nil
}

// databaseName is how messages name the database: the file, or the etcd
// endpoints and prefix (never a password).
func (c *Config) databaseName() string {
	if !c.onEtcd() {
		return c.Global.Database
	}
	ec, err := c.etcdConfig()
	if err != nil {
		return "etcd"
	}
	return "etcd://" + strings.Join(ec.Endpoints, ",") + "/" + strings.TrimSuffix(ec.Prefix, "/")
}

// openDatabase opens the configured store: the bbolt file (saying loudly
// when it had to create it: a new empty database where one was expected
// means a wrong path, and the pooler would then treat every VM of its
// pools as unknown), or etcd.
func openDatabase(cfg *Config, logger *slog.Logger) (*store.Store, error) {
	if cfg.onEtcd() {
		return openEtcdStore(cfg)
	}
	path := cfg.Global.Database
	_, statErr := os.Stat(path)
	st := store.New(path)
	st.Retention = pool.Hours(cfg.Global.DataTTL)
	if err := st.Open(); err != nil {
		return nil, err
	}
	if errors.Is(statErr, fs.ErrNotExist) && logger != nil {
		logger.Warn("created new database at "+path+" (no file was there: if this pooler had a database before, the path is wrong)",
			"database", path, "config", cfg.file)
	}
	return st, nil
}

// openEtcdStore opens the store on etcd as configured.
func openEtcdStore(cfg *Config) (*store.Store, error) {
	ec, err := cfg.etcdConfig()
	if err != nil {
		return nil, err
	}
	eng, err := etcd.Open(ec)
	if err != nil {
		return nil, err
	}
	st := store.New(cfg.databaseName())
	st.Engine = eng
	st.Retention = pool.Hours(cfg.Global.DataTTL)
	st.CheckoutWindow = defaultCheckoutWindow
	if cfg.Etcd != nil && cfg.Etcd.CheckoutWindow != nil {
		st.CheckoutWindow = *cfg.Etcd.CheckoutWindow
	}
	st.Batch = etcdBatch(ec.MaxTxnOps)
	if err := st.Open(); err != nil {
		eng.Close()
		return nil, err
	}
	return st, nil
}

// etcdBatch is how many records a bulk write changes per transaction
// within maxTxnOps (each record takes up to two writes and a compare).
func etcdBatch(maxTxnOps int) int {
	if maxTxnOps <= 0 {
		maxTxnOps = etcd.DefaultMaxTxnOps
	}
	return max(maxTxnOps/3, 1)
}
