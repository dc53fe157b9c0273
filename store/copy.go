package store

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// copyBuckets are the buckets CopyTo moves, meta last (its instance id
// makes the copy the same pooler).
var copyBuckets = [][]byte{bucketVMs, bucketPools, bucketDestroyed, bucketTokens, bucketTokensUser,
	bucketDays, bucketDayTags, bucketOverrides, bucketRequests, bucketReqsPending, bucketJobs, bucketUserVMs, bucketUserReqs, bucketMeta}

// CopyResult counts what CopyTo wrote, per bucket.
type CopyResult map[string]int

// CopyTo copies every record of s into dst, which must hold no VM, token,
// request, job or rollup yet (a fresh database on any engine): the state of
// a stopped pooler moves from its bbolt file to etcd or back. Values are
// copied as they are (the same record codec on both engines), including
// the instance id, so the VMs the pooler made stay its own. It reads s in
// one transaction and writes dst in transactions of at most dst's batch
// size; run Check on dst afterwards.
func (s *Store) CopyTo(dst *Store) (CopyResult, error) {
	if err := dst.view(func(tx kv.Tx) error {
		for _, b := range copyBuckets[:len(copyBuckets)-1] {
			if k, err := firstKey(tx, b, nil, nil); err != nil {
				return err
			} else if k != nil {
				return errs.Errorf(errs.ECONFLICT, "the destination %s is not empty (bucket %s has records): copy into a fresh database", dst.Path, b)
			}
		}
		return nil
	}); err != nil {
		return nil, err
	}
	type kvPair struct{ k, v []byte }
	data := map[string][]kvPair{}
	var maxJob uint64
	err := s.view(func(tx kv.Tx) error {
		for _, b := range copyBuckets {
			err := tx.Scan(b, nil, nil, func(k, v []byte) (bool, error) {
				data[string(b)] = append(data[string(b)], kvPair{slices.Clone(k), slices.Clone(v)})
				if string(b) == string(bucketJobs) && len(k) == 8 {
					maxJob = max(maxJob, binary.BigEndian.Uint64(k))
				}
				return true, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", s.Path, err)
	}
	res := CopyResult{}
	for _, b := range copyBuckets {
		pairs := data[string(b)]
		for len(pairs) > 0 {
			n := min(len(pairs), dst.batch(), 1000)
			chunk := pairs[:n]
			pairs = pairs[n:]
			if err := dst.eng.Update(func(tx kv.Tx) error {
				for _, p := range chunk {
					if err := tx.Put(b, p.k, p.v); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return res, fmt.Errorf("write %s (bucket %s): %w", dst.Path, b, err)
			}
			res[string(b)] += n
		}
	}
	// Job ids go on from the source's: a new job must not take a copied id.
	if err := dst.eng.Update(func(tx kv.Tx) error { return tx.SetSequence(bucketJobs, maxJob) }); err != nil {
		return res, fmt.Errorf("write %s (job sequence): %w", dst.Path, err)
	}
	return res, nil
}
