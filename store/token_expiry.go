package store

import (
	"encoding/json"
	"time"

	"github.com/vmpooler/vmpooler/store/kv"
)

// PurgeTokens deletes every token created before cutoff ([auth] token_ttl)
// and returns how many went, in transactions of at most s.batch() tokens.
func (s *Store) PurgeTokens(cutoff time.Time) (int, error) {
	total := 0
	for {
		var gone []Token
		more := false
		err := s.update(func(tx kv.Tx, now time.Time, d counts) error {
			gone, more = nil, false // update may run the function again
			err := tx.Scan(bucketTokens, nil, nil, func(k, v []byte) (bool, error) {
				var t Token
				if err := json.Unmarshal(v, &t); err != nil {
					return false, err
				}
				if t.Created.Before(cutoff) {
					if len(gone) == s.batch() {
						more = true
						return false, nil
					}
					gone = append(gone, t)
				}
				return true, nil
			})
			if err != nil {
				return err
			}
			for i := range gone {
				if err := tx.Delete(bucketTokensUser, userKey(&gone[i])); err != nil {
					return err
				}
				if err := tx.Delete(bucketTokens, tokenKey(gone[i].Token)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += len(gone)
		if !more {
			return total, nil
		}
	}
}
