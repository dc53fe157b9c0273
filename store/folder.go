package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"github.com/vmpooler/vmpooler/store/kv"
)

// keyFolders is the meta key of the pool folders the pooler has used:
// JSON, pool name → PoolFolder.
var keyFolders = []byte("pool_folders")

// PoolFolder is where a pool's VMs were cloned.
type PoolFolder struct {
	Datacenter string `json:"datacenter,omitempty"`
	Folder     string `json:"folder"`
}

func loadFolders(tx kv.Tx) (map[string]PoolFolder, error) {
	out := map[string]PoolFolder{}
	v := tx.Get(bucketMeta, keyFolders)
	if v == nil {
		return out, nil
	}
	if err := json.Unmarshal(v, &out); err != nil {
		return nil, fmt.Errorf("bad pool folder record: %w", err)
	}
	return out, nil
}

// RememberFolders records the folders of the given pools (pool name →
// folder), keeping those of pools not given, so that the folders of pools
// later removed from the configuration are still known. It writes only
// when something changed.
func (s *Store) RememberFolders(pools map[string]PoolFolder) error {
	var changed bool
	if err := s.view(func(tx kv.Tx) error {
		old, err := loadFolders(tx)
		for name, f := range pools {
			if old[name] != f {
				changed = true
			}
		}
		return err
	}); err != nil || !changed {
		return err
	}
	return s.update(func(tx kv.Tx, _ time.Time, _ counts) error {
		all, err := loadFolders(tx)
		if err != nil {
			return err
		}
		maps.Copy(all, pools)
		return putJSON(tx, bucketMeta, keyFolders, all, "pool folder record")
	})
}

// PoolFolders returns every remembered pool folder.
func (s *Store) PoolFolders() (map[string]PoolFolder, error) {
	return read(s, loadFolders)
}

// ForgetFolder drops a pool's remembered folder (nothing of the pooler's
// is left in it).
func (s *Store) ForgetFolder(pool string) error {
	return s.update(func(tx kv.Tx, _ time.Time, _ counts) error {
		all, err := loadFolders(tx)
		if err != nil {
			return err
		}
		if _, ok := all[pool]; !ok {
			return nil
		}
		delete(all, pool)
		return putJSON(tx, bucketMeta, keyFolders, all, "pool folder record")
	})
}
