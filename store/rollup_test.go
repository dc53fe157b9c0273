package store

import (
	"encoding/binary"
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/internal/errs"
	bolt "go.etcd.io/bbolt"
)

func TestRollups(t *testing.T) {
	s := MustOpenStore(t) // test clock: 2024-03-10
	fillReady(t, s, "p", "", 2)
	got, err := s.Rollups("2024-03-09", "2024-03-11")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Date != "2024-03-09" || got[1].Date != "2024-03-10" || got[2].Date != "2024-03-11" {
		t.Fatalf("got %+v", got)
	}
	if got[0].Boot == nil || got[0].Clone == nil || got[0].Tags == nil || len(got[0].Boot) != 0 {
		t.Errorf("empty day: %+v, want empty maps", got[0])
	}
	if got[1].Boot["p"].Count != 2 {
		t.Errorf("boot: %+v", got[1].Boot)
	}
	for _, r := range [][2]string{{"2024-03-11", "2024-03-10"}, {"x", "2024-03-10"}, {"2024-03-10", "2024-13-01"}, {"1990-01-01", "2024-01-01"}} {
		_, err := s.Rollups(r[0], r[1])
		mustCode(t, err, errs.EINVALID)
	}
}

// TestModifyCostIsBoundedByItsTags is the regression test of the tag
// freeze: a 1-tag PUT on a day that already holds many tag values must not
// rewrite them. Before the day_tags layout, every tag decoded and
// re-encoded the whole day (here ~220 KB of JSON per tag).
func TestModifyCostIsBoundedByItsTags(t *testing.T) {
	needFile(t)
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 1)
	if _, err := s.Checkout(CheckoutRequest{Pools: []PoolCount{{"p", 1}}}); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("v", 200)
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i := range 1000 {
			if err := addTag(boltTx{tx}, s.Now(), "build", long+itoa(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pageAlloc := func() int64 { st := s.db.Stats(); return st.TxStats.GetPageAlloc() }
	before := pageAlloc()
	if _, err := s.Modify("p-0", 0, map[string]string{"team": "qa"}); err != nil {
		t.Fatal(err)
	}
	if got := pageAlloc() - before; got > 64<<10 {
		t.Errorf("a 1-tag modify allocated %d bytes of pages, want at most 64 KiB whatever the day holds", got)
	}
	day := s.Now().UTC().Format(dateLayout)
	r, err := s.Rollups(day, day)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(r[0].Tags["build"]); got != 1000 || r[0].Tags["team"]["qa"] != 1 || r[0].Tags["build"][long+"7"] != 1 {
		t.Errorf("rollup: %d build values, team %v", got, r[0].Tags["team"])
	}
	if d, _ := s.RollupDurations(day, day); len(d[0].Tags) != 0 || d[0].Boot["p"].Count != 1 {
		t.Errorf("RollupDurations: got %+v, want boot counts and no tags", d[0])
	}
}

// TestMigrateDayTags opens a schema-1 file whose days carry their tags in
// JSON and finds them moved to day_tags.
func TestMigrateDayTags(t *testing.T) {
	needFile(t)
	s := MustOpenStore(t)
	fillReady(t, s, "p", "", 1)
	day := s.Now().UTC().Format(dateLayout)
	err := s.db.Update(func(tx *bolt.Tx) error {
		old := `{"date":"` + day + `","clone":{},"boot":{"p":{"count":1,"sum":2,"min":2,"max":2}},"tags":{"team":{"qa":3,"dev":1}}}`
		if err := tx.Bucket(bucketDays).Put([]byte(day), []byte(old)); err != nil {
			return err
		}
		if err := tx.DeleteBucket(bucketDayTags); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, binary.BigEndian.AppendUint64(nil, 1))
	})
	if err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s)
	r, err := s.Rollups(day, day)
	if err != nil {
		t.Fatal(err)
	}
	if r[0].Tags["team"]["qa"] != 3 || r[0].Tags["team"]["dev"] != 1 || r[0].Boot["p"].Count != 1 {
		t.Errorf("after migration: got %+v", r[0])
	}
	s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketDays).Get([]byte(day)); strings.Contains(string(v), "qa") {
			t.Errorf("day JSON still holds tags: %s", v)
		}
		return nil
	})
}
