package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/kv"
)

// syncWait bounds how long Counts waits for the counts to catch up with
// this process's own writes on a shared engine: typically a millisecond;
// with etcd unreachable, /status and /metrics answer after it with the
// counts they have.
const syncWait = 500 * time.Millisecond

// follower keeps the counts of a shared engine's pools index in step with
// every writer's changes (kv.Shared.Follow).
type follower struct {
	sh     kv.Shared
	cancel context.CancelFunc
}

// sync waits (bounded) until the counts include this process's writes.
// On bbolt (f nil) they always do.
func (f *follower) sync() {
	if f == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncWait)
	defer cancel()
	f.sh.Sync(ctx) // on a timeout the counts are a moment behind; no error to give
}

// openShared opens the store on s.Engine: a database other processes use
// too. There is no file to migrate: a fresh database gets the current
// schema version and an instance id in one transaction; one written by an
// older schema that a shared database has had is upgraded (sharedUpgrades);
// any other version is refused.
func (s *Store) openShared() error {
	var instance string
	var adopted []string
	var version uint64
	err := s.Engine.Update(func(tx kv.Tx) (err error) {
		want := binary.BigEndian.AppendUint64(nil, uint64(len(migrations)))
		switch v := tx.Get(bucketMeta, keyVersion); {
		case v == nil:
			if err := tx.Put(bucketMeta, keyVersion, want); err != nil {
				return err
			}
			version = uint64(len(migrations))
		case len(v) == 8 && binary.BigEndian.Uint64(v) >= firstSharedVersion && binary.BigEndian.Uint64(v) <= uint64(len(migrations)):
			version = binary.BigEndian.Uint64(v)
		default:
			return errs.Errorf(errs.EINVALID, "database %s has schema version %x; this vmpooler writes %d", s.Path, v, len(migrations))
		}
		if instance, err = ensureInstance(tx); err != nil {
			return err
		}
		adopted, err = loadAdopted(tx)
		return err
	})
	if err == nil && version < uint64(len(migrations)) {
		err = s.upgradeShared(version)
	}
	if err != nil {
		return fmt.Errorf("open database %s: %w", s.Path, err)
	}
	s.eng, s.instance, s.adopted = s.Engine, instance, adopted
	s.counts = counts{}
	sh, ok := s.Engine.(kv.Shared)
	if !ok {
		return nil // a private engine: counts come from this process's commits
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &follower{sh: sh, cancel: cancel}
	if err := sh.Follow(ctx, bucketPools, s.follow); err != nil {
		cancel()
		s.eng = nil
		return fmt.Errorf("open database %s: follow the pool indexes: %w", s.Path, err)
	}
	s.shared = f
	return nil
}

// follow applies one change of the pools index to the counts. LastReady
// comes from live changes only: it reports readiness since open.
func (s *Store) follow(ev kv.Event) {
	if fn := s.changed.Load(); fn != nil && !ev.Reset && !ev.Snapshot {
		defer (*fn)() // after the counts are updated
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.Reset {
		last := make(map[string]time.Time, len(s.counts))
		for pool, pc := range s.counts {
			last[pool] = pc.LastReady
		}
		s.counts = counts{}
		for pool, t := range last {
			if !t.IsZero() {
				s.counts.readyAt(pool, t)
			}
		}
		return
	}
	pool, st, _, ok := splitIndexKey(ev.Key)
	if !ok {
		return
	}
	n := 1
	if ev.Deleted {
		n = -1
	}
	s.counts.add(pool, st, n)
	if st == StateReady && !ev.Deleted && !ev.Snapshot {
		if t, ok := indexTime(ev.Key); ok {
			s.counts.readyAt(pool, t)
		}
	}
	if s.counts[pool] == (PoolCounts{}) {
		delete(s.counts, pool)
	}
}

// closeShared stops following and closes the engine.
func (s *Store) closeShared() error {
	if s.shared != nil {
		s.shared.cancel()
		s.shared = nil
	}
	err := s.eng.Close()
	s.eng = nil
	return err
}

// OnChange has fn called after every live change of the pool indexes by
// any process (a VM became ready, was checked out, returned...), on a
// shared engine, from the goroutine that follows them: fn must not block.
func (s *Store) OnChange(fn func()) { s.changed.Store(&fn) }

// firstSharedVersion is the schema of the first release that ran on etcd;
// a shared database has no older one.
const firstSharedVersion = 3

// sharedUpgrades[v] takes a shared database from schema v to v+1, in
// transactions of at most s.batch() records each, any of which may run
// again (a process stopped half way, or two upgrading at once, is no
// harm); the schema version moves only once all of them are done. Every
// replica must run the new version from then on: one still running an
// older version would write what the new schema does not expect (Check
// reports it).
var sharedUpgrades = map[uint64]func(s *Store) error{
	3: func(s *Store) error { // migrateUserIndex
		for _, fill := range userIndexers {
			var from []byte
			for {
				err := s.Engine.Update(func(tx kv.Tx) (err error) {
					from, err = fill(tx, from, s.batch())
					return err
				})
				if err != nil {
					return err
				} else if from == nil {
					break
				}
			}
		}
		return nil
	},
}

// upgradeShared upgrades a shared database from schema version to the
// current one.
func (s *Store) upgradeShared(version uint64) error {
	for v := version; v < uint64(len(migrations)); v++ {
		up := sharedUpgrades[v]
		if up == nil {
			return fmt.Errorf("no upgrade of a shared database from schema %d", v)
		}
		if err := up(s); err != nil {
			return fmt.Errorf("upgrade from schema %d: %w", v, err)
		}
		next := binary.BigEndian.AppendUint64(nil, v+1)
		err := s.Engine.Update(func(tx kv.Tx) error {
			if cur := tx.Get(bucketMeta, keyVersion); len(cur) == 8 && binary.BigEndian.Uint64(cur) > v {
				return nil // upgraded by another process meanwhile
			}
			return tx.Put(bucketMeta, keyVersion, next)
		})
		if err != nil {
			return fmt.Errorf("upgrade from schema %d: %w", v, err)
		}
	}
	return nil
}

// Ping reports whether the database answers: on a shared engine (etcd) one
// read, within its request timeout; the bbolt file answers while it is
// open.
func (s *Store) Ping() error {
	if s.eng == nil {
		return errs.Errorf(errs.EUNAVAILABLE, "the database %s is closed", s.Path)
	} else if s.db != nil {
		return nil
	}
	return s.view(func(tx kv.Tx) error {
		tx.Get(bucketMeta, keyVersion)
		return nil
	})
}
