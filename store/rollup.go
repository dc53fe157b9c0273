package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
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
func getDay(tx kv.Tx, date string) (DayRollup, error) {
	day := emptyDay(date)
	v := tx.Get(bucketDays, []byte(date))
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
func putDay(tx kv.Tx, day *DayRollup) error {
	return putJSON(tx, bucketDays, []byte(day.Date), day, "rollup "+day.Date)
}

// addDuration adds a clone or boot duration of pool to the rollup of now's day.
func addDuration(tx kv.Tx, now time.Time, kind, pool string, dur time.Duration) error {
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

// Tag counts live in their own bucket, one key per day, tag and value:
// <YYYY-MM-DD> <tag> 0 <value> → 8-byte big-endian count. A PUT then costs
// one Get and one Put per tag it changes, whatever the day already holds
// (the day's JSON used to carry every value and was decoded and rewritten
// once per tag: 13.7 s for 3,000 tags). Tag names never contain a zero
// byte, so the first zero after the date ends the name.

// maxTagLen and maxTagValueLen bound what the store accepts, far below
// bbolt's key limit; the API's own limits are tighter.
const (
	maxTagLen      = 255
	maxTagValueLen = 1024
)

// tagKey is the day_tags key of tag=value on date.
func tagKey(date, tag, value string) []byte {
	k := make([]byte, 0, len(date)+len(tag)+1+len(value))
	k = append(k, date...)
	k = append(k, tag...)
	k = append(k, 0)
	return append(k, value...)
}

// addTag counts one use of a tag value in the rollup of now's day.
func addTag(tx kv.Tx, now time.Time, tag, value string) error {
	k := tagKey(now.UTC().Format(dateLayout), tag, value)
	var n uint64
	if v := tx.Get(bucketDayTags, k); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	} else if v != nil {
		return fmt.Errorf("bad tag count %x at %q", v, k)
	}
	return tx.Put(bucketDayTags, k, binary.BigEndian.AppendUint64(nil, n+1))
}

// getDayTags reads the tag counts of date into day.Tags.
func getDayTags(tx kv.Tx, day *DayRollup) error {
	prefix := []byte(day.Date)
	return tx.Scan(bucketDayTags, prefix, nil, func(k, v []byte) (bool, error) {
		tag, value, ok := strings.Cut(string(k[len(prefix):]), "\x00")
		if !ok || len(v) != 8 {
			return false, fmt.Errorf("bad tag count entry %q", k)
		}
		m := day.Tags[tag]
		if m == nil {
			m = map[string]int{}
			day.Tags[tag] = m
		}
		m[value] += int(binary.BigEndian.Uint64(v))
		return true, nil
	})
}

// migrateDayTags moves the tag counts out of each day's JSON into
// day_tags (schema version 2).
func migrateDayTags(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketDayTags); err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketDayTags, err)
	}
	var dates []string // collected first: never write while a cursor walks
	if err := tx.Bucket(bucketDays).ForEach(func(k, _ []byte) error {
		dates = append(dates, string(k))
		return nil
	}); err != nil {
		return err
	}
	b := tx.Bucket(bucketDayTags)
	for _, date := range dates {
		var day DayRollup
		if err := json.Unmarshal(tx.Bucket(bucketDays).Get([]byte(date)), &day); err != nil {
			return fmt.Errorf("decode rollup %s: %w", date, err)
		}
		for tag, vals := range day.Tags {
			for value, n := range vals {
				if n <= 0 || strings.ContainsRune(tag, 0) {
					continue
				}
				if err := b.Put(tagKey(date, tag, value), binary.BigEndian.AppendUint64(nil, uint64(n))); err != nil {
					return err
				}
			}
		}
		day.Date, day.Tags = date, nil
		if err := putDay(boltTx{tx}, &day); err != nil {
			return err
		}
	}
	return nil
}

// Rollups returns the day rollups from..to inclusive (YYYY-MM-DD), one per
// day in order, empty days included. EINVALID for bad dates or from > to,
// or a range longer than about ten years.
func (s *Store) Rollups(from, to string) ([]DayRollup, error) {
	return s.rollups(from, to, true)
}

// RollupDurations is Rollups without the tag counts (Tags left empty): what
// /status needs, at a cost that does not grow with the tags of the day.
func (s *Store) RollupDurations(from, to string) ([]DayRollup, error) {
	return s.rollups(from, to, false)
}

func (s *Store) rollups(from, to string, tags bool) ([]DayRollup, error) {
	f, err := time.Parse(dateLayout, from)
	if err != nil {
		return nil, errs.Errorf(errs.EINVALID, "bad date %q: want YYYY-MM-DD", from)
	}
	t, err := time.Parse(dateLayout, to)
	if err != nil {
		return nil, errs.Errorf(errs.EINVALID, "bad date %q: want YYYY-MM-DD", to)
	}
	if f.After(t) {
		return nil, errs.Errorf(errs.EINVALID, "from %s is after to %s", from, to)
	} else if t.Sub(f) > maxRollupDays*24*time.Hour {
		return nil, errs.Errorf(errs.EINVALID, "range %s..%s is longer than %d days", from, to, maxRollupDays)
	}
	var out []DayRollup
	err = s.view(func(tx kv.Tx) error {
		for day := f; !day.After(t); day = day.AddDate(0, 0, 1) {
			r, err := getDay(tx, day.Format(dateLayout))
			if err != nil {
				return err
			}
			if tags {
				if err := getDayTags(tx, &r); err != nil {
					return err
				}
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
