package store

import (
	"encoding/json"
	"time"

	bolt "go.etcd.io/bbolt"
)

// PurgeTokens deletes every token created before cutoff ([auth] token_ttl)
// and returns how many went.
func (s *Store) PurgeTokens(cutoff time.Time) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx, now time.Time, d counts) error {
		n = 0 // update may run the function again
		var gone []Token
		err := tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var t Token
			if err := json.Unmarshal(v, &t); err != nil {
				return err
			}
			if t.Created.Before(cutoff) {
				gone = append(gone, t)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for i := range gone {
			if err := tx.Bucket(bucketTokensUser).Delete(userKey(&gone[i])); err != nil {
				return err
			}
			if err := tx.Bucket(bucketTokens).Delete(tokenKey(gone[i].Token)); err != nil {
				return err
			}
		}
		n = len(gone)
		return nil
	})
	return n, err
}
