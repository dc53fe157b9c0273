package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	bolt "go.etcd.io/bbolt"
)

// PutOverride replaces a pool's runtime override (an empty Override removes it).
// errs.EINVALID for an empty pool name or a negative size.
func (s *Store) PutOverride(pool string, o Override) error {
	if pool == "" {
		return errs.Errorf(errs.EINVALID, "an override needs a pool")
	} else if o.Size != nil && *o.Size < 0 {
		return errs.Errorf(errs.EINVALID, "pool size must not be negative")
	}
	return s.update(func(tx *bolt.Tx, now time.Time, d counts) error {
		b := tx.Bucket(bucketOverrides)
		if o.Size == nil && o.Template == "" && o.CloneTarget == "" {
			return b.Delete([]byte(pool))
		}
		v, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("encode override %s: %w", pool, err)
		}
		return b.Put([]byte(pool), v)
	})
}

// Overrides returns every pool's runtime override.
func (s *Store) Overrides() (map[string]Override, error) {
	out := map[string]Override{}
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOverrides).ForEach(func(k, v []byte) error {
			var o Override
			if err := json.Unmarshal(v, &o); err != nil {
				return fmt.Errorf("decode override %s: %w", k, err)
			}
			out[string(k)] = o
			return nil
		})
	})
	return out, err
}
