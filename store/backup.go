package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// BackupSized writes a consistent copy of the whole file like Backup, but
// first tells start its exact size, so that a copy sent over a stream can
// announce its length and a truncated copy is detected by the reader.
func (s *Store) BackupSized(start func(size int64) (io.Writer, error)) (int64, error) {
	var n int64
	err := s.viewFile(func(tx *bolt.Tx) error {
		w, err := start(tx.Size())
		if err != nil {
			return err
		}
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// VerifyFile opens the database file at path read-only (it never creates
// or changes a file) and runs bbolt's consistency check and the store's
// invariants, as Check does. A missing file is an error; a file another
// process holds open for writing is ErrInUse. It also refuses a file whose
// schema is newer than this program. A file of an older schema (a backup
// taken by an older version) is checked as this program will see it: a
// copy of it in a temporary file is migrated, then checked.
func VerifyFile(path string) (err error) {
	// bbolt maps the file: a page past its end would be a SIGBUS, not an
	// error. A truncated copy is caught by its size, a page number past the
	// end by the protected walk below.
	if err := checkSize(path); err != nil {
		return err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, berrors.ErrTimeout) {
		return &inUseError{path: path}
	} else if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		return &corruptError{path: path, cause: err}
	} else if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	defer db.Close()
	// bbolt asserts (panics) on pages that are not what their parent says,
	// anywhere in the read below, not only in the walk: all of it is
	// guarded, and a panic is corruption.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &corruptError{path: path, cause: r}
		}
	}()
	var version uint64
	err = db.View(func(tx *bolt.Tx) (err error) {
		// The protected walk first: it reads every page, so that the
		// schema check after it cannot fault on a damaged one.
		if err := walkProtected(tx); err != nil {
			return err
		}
		if version, err = checkSchema(tx); err != nil {
			return err
		} else if version < uint64(len(migrations)) {
			return nil // checked once migrated, below
		}
		return checkFile(tx)
	})
	if err == nil && version < uint64(len(migrations)) {
		err = verifyMigrated(db, version)
	}
	if err != nil {
		// Whatever the walk or the checks found, the file is damaged (or
		// not ours): say so, with the path and what to do.
		return &corruptError{path: path, cause: err}
	}
	return nil
}

// checkFile runs bbolt's consistency check and the store's invariants on
// a file of the current schema.
func checkFile(tx *bolt.Tx) error {
	var errs []error
	for err := range tx.Check() {
		errs = append(errs, err)
	}
	errs = append(errs, checkIndexes(boltTx{tx})...)
	if len(errs) > maxCheckErrors {
		errs = append(errs[:maxCheckErrors], fmt.Errorf("and %d more problems", len(errs)-maxCheckErrors))
	}
	return errors.Join(errs...)
}

// verifyMigrated checks db, of an older schema version, as this program
// will see it once it has opened it: a copy in a temporary file, migrated
// to the current schema. db itself is not changed.
func verifyMigrated(db *bolt.DB, version uint64) (err error) {
	f, err := os.CreateTemp("", "vmpooler-verify-*.db")
	if err != nil {
		return fmt.Errorf("a copy to migrate: %w", err)
	}
	defer os.Remove(f.Name())
	err = db.View(func(tx *bolt.Tx) error {
		_, err := tx.WriteTo(f)
		return err
	})
	if err = errors.Join(err, f.Close()); err != nil {
		return fmt.Errorf("a copy to migrate: %w", err)
	}
	cp, err := bolt.Open(f.Name(), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return fmt.Errorf("a copy to migrate: %w", err)
	}
	defer cp.Close()
	if err := cp.Update(migrate); err != nil {
		return fmt.Errorf("schema %d, migrated in a copy: %w", version, err)
	}
	if err := cp.View(checkFile); err != nil {
		return fmt.Errorf("schema %d, migrated in a copy: %w", version, err)
	}
	return nil
}

// checkSchema returns the schema version of a vmpooler database; it
// reports a file that is not one, or of a version newer than this program.
func checkSchema(tx *bolt.Tx) (uint64, error) {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return 0, errors.New("not a vmpooler database (no meta bucket)")
	}
	v := meta.Get(keyVersion)
	if len(v) != 8 {
		return 0, fmt.Errorf("not a vmpooler database (schema version %x)", v)
	}
	n := binary.BigEndian.Uint64(v)
	if n > uint64(len(migrations)) {
		return 0, fmt.Errorf("schema version %d is newer than this vmpooler (%d)", n, len(migrations))
	}
	for _, name := range [][]byte{bucketVMs, bucketPools, bucketDestroyed, bucketTokens,
		bucketTokensUser, bucketDays, bucketOverrides, bucketRequests, bucketReqsPending, bucketJobs} {
		if tx.Bucket(name) == nil {
			return 0, fmt.Errorf("not a vmpooler database (no %s bucket)", name)
		}
	}
	return n, nil
}

// checkSize compares the file's size with the page count its newest valid
// meta page records (bbolt's layout: a 16-byte page header, then magic,
// version, page size, flags, root bucket, freelist, page count, txid).
func checkSize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	var best struct{ pgid, txid, pageSize uint64 }
	for _, off := range []int64{0, -1} {
		if off < 0 {
			if best.pageSize == 0 {
				break
			}
			off = int64(best.pageSize)
		}
		buf := make([]byte, 16+64)
		if _, err := f.ReadAt(buf, off); err != nil {
			continue
		}
		m := buf[16:]
		le := binary.LittleEndian
		if le.Uint32(m[0:]) != 0xED0CDAED {
			continue
		}
		ps, pgid, txid := uint64(le.Uint32(m[8:])), le.Uint64(m[40:]), le.Uint64(m[48:])
		if off == 0 || txid > best.txid {
			best.pgid, best.txid, best.pageSize = pgid, txid, ps
		}
	}
	if best.pageSize == 0 {
		return fmt.Errorf("database %s: not a bbolt file", path)
	}
	if want := best.pgid * best.pageSize; uint64(fi.Size()) < want {
		return fmt.Errorf("database %s is truncated: %d bytes, its meta page needs %d", path, fi.Size(), want)
	}
	return nil
}

// walkProtected reads every key of every bucket with memory faults turned
// into a panic of this goroutine, so a page number past the end of the file
// is reported as corruption instead of killing the process.
func walkProtected(tx *bolt.Tx) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("database is corrupt: %v", r)
		}
	}()
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			if v == nil {
				if nb := b.Bucket(k); nb != nil {
					return walk(nb)
				}
			}
			return nil
		})
	}
	return tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
}
