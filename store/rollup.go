package store

import (
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// maxRollupDays bounds one Rollups call (about ten years), so a wild range
// cannot make the server build millions of empty days.
const maxRollupDays = 3660

// dateLayout is the form of a rollup date.
const dateLayout = "2006-01-02"

// emptyDay returns a rollup for date with every map made, so that JSON
// shows {} rather than null.
func emptyDay(date string) DayRollup {
	return DayRollup{Date: date, Clone: map[string]Durations{}, Boot: map[string]Durations{}, Tags: map[string]map[string]int{}}
}

// getDay decodes the rollup of date, or an empty one.
func getDay(tx *bolt.Tx, date string) (DayRollup, error) {
	day := emptyDay(date)
	v := tx.Bucket(bucketDays).Get([]byte(date))
	if v == nil {
		return day, nil
	}
	if err := json.Unmarshal(v, &day); err != nil {
		return day, fmt.Errorf("decode rollup %s: %w", date, err)
	}
	// A stored day may lack a map (written as null); keep the promise of {}.
	if day.Clone == nil {
		day.Clone = map[string]Durations{}
	}
	if day.Boot == nil {
		day.Boot = map[string]Durations{}
	}
	if day.Tags == nil {
		day.Tags = map[string]map[string]int{}
	}
	return day, nil
}

// putDay writes a rollup.
func putDay(tx *bolt.Tx, day *DayRollup) error {
	v, err := json.Marshal(day)
	if err != nil {
		return fmt.Errorf("encode rollup %s: %w", day.Date, err)
	}
	return tx.Bucket(bucketDays).Put([]byte(day.Date), v)
}

// addDuration adds a clone or boot duration of pool to the rollup of now's day.
func addDuration(tx *bolt.Tx, now time.Time, kind, pool string, dur time.Duration) error {
	day, err := getDay(tx, now.UTC().Format(dateLayout))
	if err != nil {
		return err
	}
	m := day.Boot
	if kind == "clone" {
		m = day.Clone
	}
	secs := max(dur.Seconds(), 0)
	ds := m[pool]
	if ds.Count == 0 || secs < ds.Min {
		ds.Min = secs
	}
	if ds.Count == 0 || secs > ds.Max {
		ds.Max = secs
	}
	ds.Count++
	ds.Sum += secs
	m[pool] = ds
	return putDay(tx, &day)
}

// addTag counts one use of a tag value in the rollup of now's day.
func addTag(tx *bolt.Tx, now time.Time, tag, value string) error {
	day, err := getDay(tx, now.UTC().Format(dateLayout))
	if err != nil {
		return err
	}
	if day.Tags[tag] == nil {
		day.Tags[tag] = map[string]int{}
	}
	day.Tags[tag][value]++
	return putDay(tx, &day)
}

// Rollups returns the day rollups from..to inclusive (YYYY-MM-DD), one per
// day in order, empty days included. EINVALID for bad dates or from > to,
// or a range longer than about ten years.
func (s *Store) Rollups(from, to string) ([]DayRollup, error) {
	f, err := time.Parse(dateLayout, from)
	if err != nil {
		return nil, Errorf(EINVALID, "bad date %q: want YYYY-MM-DD", from)
	}
	t, err := time.Parse(dateLayout, to)
	if err != nil {
		return nil, Errorf(EINVALID, "bad date %q: want YYYY-MM-DD", to)
	}
	if f.After(t) {
		return nil, Errorf(EINVALID, "from %s is after to %s", from, to)
	} else if t.Sub(f) > maxRollupDays*24*time.Hour {
		return nil, Errorf(EINVALID, "range %s..%s is longer than %d days", from, to, maxRollupDays)
	}
	var out []DayRollup
	err = s.view(func(tx *bolt.Tx) error {
		for day := f; !day.After(t); day = day.AddDate(0, 0, 1) {
			r, err := getDay(tx, day.Format(dateLayout))
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
