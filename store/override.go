package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// PutOverride replaces a pool's runtime override (an empty Override removes it).
// EINVALID for an empty pool name or a negative size.
func (s *Store) PutOverride(pool string, o Override) error {
	if pool == "" {
		return errs.Errorf(errs.EINVALID, "an override needs a pool")
	} else if o.Size != nil && *o.Size < 0 {
		return errs.Errorf(errs.EINVALID, "pool size must not be negative")
	}
	return s.update(func(tx kv.Tx, _ time.Time, _ counts) error {
		return putOverride(tx, pool, o)
	})
}

// Override fields, for OverrideChange.
const (
	FieldSize        = "size"
	FieldTemplate    = "template"
	FieldCloneTarget = "clone_target"
)

// OverrideChange sets one field of a pool's override (POST /config/*), or
// clears it (Clear: DELETE /config/*), leaving the configured value in force.
// A set whose value is already in force (the override's, else Configured)
// writes nothing, so an override never pins a value the configuration gives.
type OverrideChange struct {
	Pool       string
	Field      string // FieldSize, FieldTemplate or FieldCloneTarget
	Value      string // a size in decimal
	Configured string // the pool's configured value of Field
	Clear      bool
}

// ChangeOverrides applies changes to the pools' overrides in one
// transaction and returns the overrides of those pools as they were
// before it (absent: none), so the caller can tell what changed. EINVALID
// for an empty pool, an unknown field or a bad size.
func (s *Store) ChangeOverrides(changes []OverrideChange) (map[string]Override, error) {
	for _, c := range changes {
		if c.Pool == "" {
			return nil, errs.Errorf(errs.EINVALID, "an override needs a pool")
		} else if c.Field != FieldSize && c.Field != FieldTemplate && c.Field != FieldCloneTarget {
			return nil, errs.Errorf(errs.EINVALID, "unknown override field %q", c.Field)
		} else if n, err := strconv.Atoi(c.Value); c.Field == FieldSize && !c.Clear && (err != nil || n < 0) {
			return nil, errs.Errorf(errs.EINVALID, "pool size must be a whole number, not negative")
		}
	}
	var before map[string]Override
	err := s.update(func(tx kv.Tx, _ time.Time, _ counts) error {
		before = map[string]Override{}
		next := map[string]Override{}
		for _, c := range changes {
			o, seen := next[c.Pool]
			if !seen {
				if v := tx.Get(bucketOverrides, []byte(c.Pool)); v != nil {
					if err := json.Unmarshal(v, &o); err != nil {
						return fmt.Errorf("decode override %s: %w", c.Pool, err)
					}
					before[c.Pool] = o
				}
			}
			c.apply(&o)
			next[c.Pool] = o
		}
		for pool, o := range next {
			if equalOverride(o, before[pool]) {
				continue
			}
			if err := putOverride(tx, pool, o); err != nil {
				return err
			}
		}
		return nil
	})
	return before, err
}

// equalOverride reports whether a and b set the same values.
func equalOverride(a, b Override) bool {
	return a.Template == b.Template && a.CloneTarget == b.CloneTarget &&
		(a.Size == nil) == (b.Size == nil) && (a.Size == nil || *a.Size == *b.Size)
}

// apply makes c's change to o.
func (c OverrideChange) apply(o *Override) {
	switch c.Field {
	case FieldSize:
		eff := c.Configured
		if o.Size != nil {
			eff = strconv.Itoa(*o.Size)
		}
		if c.Clear {
			o.Size = nil
		} else if eff != c.Value {
			n, _ := strconv.Atoi(c.Value)
			o.Size = &n
		}
	case FieldTemplate:
		o.Template = c.set(o.Template)
	case FieldCloneTarget:
		o.CloneTarget = c.set(o.CloneTarget)
	}
}

// set returns a string field's new override value given the current one.
func (c OverrideChange) set(cur string) string {
	eff := cur
	if eff == "" {
		eff = c.Configured
	}
	if c.Clear {
		return ""
	} else if eff == c.Value {
		return cur
	}
	return c.Value
}

// putOverride writes a pool's override; an empty one is removed.
func putOverride(tx kv.Tx, pool string, o Override) error {
	if o.Size == nil && o.Template == "" && o.CloneTarget == "" {
		return tx.Delete(bucketOverrides, []byte(pool))
	}
	return putJSON(tx, bucketOverrides, []byte(pool), o, "override "+pool)
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
