package store

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// PutOverride replaces a pool's runtime override (an empty Override removes it).
// errs.EINVALID for an empty pool name or a negative size.
func (s *Store) PutOverride(pool string, o Override) error {
	if pool == "" {
		return errs.Errorf(errs.EINVALID, "an override needs a pool")
	} else if o.Size != nil && *o.Size < 0 {
		return errs.Errorf(errs.EINVALID, "pool size must not be negative")
	}
	return s.update(func(tx kv.Tx, now time.Time, d counts) error {
		if o.Size == nil && o.Template == "" && o.CloneTarget == "" {
			return tx.Delete(bucketOverrides, []byte(pool))
		}
		v, err := json.Marshal(o)
		if err != nil {
			return fmt.Errorf("encode override %s: %w", pool, err)
		}
		return tx.Put(bucketOverrides, []byte(pool), v)
	})
}

// Overrides returns every pool's runtime override.
func (s *Store) Overrides() (map[string]Override, error) {
	out := map[string]Override{}
	err := s.view(func(tx kv.Tx) error {
		return tx.Scan(bucketOverrides, nil, nil, func(k, v []byte) (bool, error) {
			var o Override
			if err := json.Unmarshal(v, &o); err != nil {
				return false, fmt.Errorf("decode override %s: %w", k, err)
			}
			out[string(k)] = o
			return true, nil
		})
	})
	return out, err
}
