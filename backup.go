package main

// Online backup. The running pooler serves a consistent copy of its
// database (one bbolt read transaction, Tx.WriteTo: writers go on) on a
// unix socket beside the database, "<database>.sock", mode 0600.
//
// Why a unix socket rather than an admin HTTP route: it needs no
// credentials and works whether or not [auth] is configured; it is not
// reachable from the network, whatever listen says; and its permission is
// the file system's: whoever may read the database file (its owner, or
// root) may take a backup, nobody else. systemd's StateDirectory holds both.
// Over the socket it speaks plain HTTP (GET /backup), so the copy's length
// is announced and a short copy is detected.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vmpooler/vmpooler/store"
)

// adminSocket is the admin channel's path for a database.
func adminSocket(database string) string { return database + ".sock" }

// maxSocketPath is the longest path a unix socket may have on Linux.
const maxSocketPath = 107

// listenAdmin serves GET /backup on the admin socket. A socket path too
// long for the kernel is logged and the pooler runs without it (backups
// then need the pooler stopped).
func (d *daemon) listenAdmin(cfg *Config) (io.Closer, error) {
	if cfg.onEtcd() {
		return io.NopCloser(nil), nil // no file to copy: etcd has its own backups
	}
	path := adminSocket(cfg.Global.Database)
	if len(path) > maxSocketPath {
		d.logger.Warn("admin socket path too long for a unix socket; online backups are off (use a shorter database path)", "path", path)
		return io.NopCloser(nil), nil
	}
	// We hold the database's lock, so a socket file left there is a dead
	// pooler's.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	old := syscall.Umask(0o177) // created 0600: no window with a wider mode
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /backup", d.handleBackup)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	d.logger.Info("admin socket listening (vmpooler backup)", "path", path)
	return closerFunc(func() error {
		err := srv.Close()
		os.Remove(path)
		return err
	}), nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// handleBackup streams a consistent copy of the database.
func (d *daemon) handleBackup(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	n, err := d.st.BackupSized(func(size int64) (io.Writer, error) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.WriteHeader(http.StatusOK)
		return w, nil
	})
	if err != nil {
		d.logger.Error("online backup failed", "err", err, "bytes", n)
		return // the client sees a short copy
	}
	d.logger.Info("online backup served", "bytes", n, "took", time.Since(start).Round(time.Millisecond))
}

// errEtcdBackup is the answer of backup and restore when the state is on etcd.
var errEtcdBackup = errors.New("the state is on etcd: back it up with etcdctl snapshot save, or copy it to a bbolt file with vmpooler copy-store -to FILE (and back with -from FILE)")

// loadFileCommand is loadRequired for backup and restore, which copy the
// bbolt file and so refuse a store on etcd.
func loadFileCommand(cmd, synopsis string, args []string, stderr io.Writer, name, usage string) (*Config, string, error) {
	cfg, v, err := loadRequired(cmd, synopsis, args, stderr, name, usage)
	if err == nil && cfg.onEtcd() {
		err = errEtcdBackup
	}
	return cfg, v, err
}

// runBackup writes a consistent copy of the database to -out: from the
// running pooler through its admin socket, or, when no pooler runs,
// straight from the file (its lock keeps a pooler from starting meanwhile).
func runBackup(args []string, stdout, stderr io.Writer) error {
	cfg, out, err := loadFileCommand("backup", "vmpooler backup -config F -out FILE", args, stderr,
		"out", "file to write the copy to (replaced atomically)")
	if err != nil {
		return err
	}
	how, n, err := backupTo(cfg.Global.Database, out)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	fmt.Fprintf(stdout, "backup of %s written to %s (%d bytes, %s, checked)\n", cfg.Global.Database, out, n, how)
	return nil
}

// backupTo copies database to out: into a temporary file beside out, which
// is fsynced, checked (VerifyFile) and renamed over out, the directory then
// fsynced. It says whether the copy came from the running pooler.
func backupTo(database, out string) (how string, n int64, err error) {
	err = writeAtomically(out, func(f *os.File) error {
		how, n, err = copyDatabase(database, f)
		return err
	}, store.VerifyFile)
	return how, n, err
}

// copyDatabase writes a consistent copy of database to w.
func copyDatabase(database string, w io.Writer) (string, int64, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, "unix", adminSocket(database))
		},
	}}
	resp, err := client.Get("http://vmpooler/backup")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", 0, fmt.Errorf("pooler answered %s", resp.Status)
		}
		n, err := io.Copy(w, resp.Body)
		if err == nil && n != resp.ContentLength {
			err = fmt.Errorf("copy is short: %d of %d bytes", n, resp.ContentLength)
		}
		return "online, from the running pooler", n, err
	}
	if errors.Is(err, syscall.EACCES) {
		return "", 0, fmt.Errorf("admin socket: %w (run as the pooler's user or root)", err)
	} else if !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ECONNREFUSED) {
		return "", 0, fmt.Errorf("admin socket: %w", err)
	}
	// No pooler is running: read the file itself, never creating it.
	if _, err := os.Stat(database); err != nil {
		return "", 0, err
	}
	st := store.New(database)
	if err := st.Open(); err != nil {
		return "", 0, err
	}
	defer st.Close()
	n, err := st.Backup(w)
	return "offline, no pooler running", n, err
}

// writeAtomically creates path's content through a temporary file in the
// same directory (mode 0600): fill writes it, it is fsynced and closed,
// check (if not nil) must accept it, then it is renamed over path and the
// directory fsynced. On any error path is untouched.
func writeAtomically(path string, fill func(*os.File) error, check func(string) error) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("cannot create a file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if check != nil {
		if err = check(tmp); err != nil {
			return fmt.Errorf("the copy does not check: %w", err)
		}
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// runRestore puts a backup in place of the database: the pooler must be
// stopped; the backup must pass the same checks as `vmpooler check`; the
// database it replaces is kept beside it.
func runRestore(args []string, stdout, stderr io.Writer) error {
	cfg, in, err := loadFileCommand("restore", "vmpooler restore -config F -in FILE", args, stderr,
		"in", "the backup to restore")
	if err != nil {
		return err
	}
	db := cfg.Global.Database
	if err := store.VerifyFile(in); err != nil {
		return fmt.Errorf("restore: %s is not a good backup, nothing changed: %w", in, err)
	}
	kept := ""
	if _, err := os.Stat(db); err == nil {
		// A read-only open takes a shared lock: it fails while a pooler
		// holds the file.
		if err := store.VerifyFile(db); errors.Is(err, store.ErrInUse) {
			return fmt.Errorf("restore: %w: stop the pooler first", err)
		}
		kept = db + ".before-restore-" + time.Now().UTC().Format("20060102T150405Z")
		if err := writeAtomically(kept, func(f *os.File) error { return copyFile(db, f) }, nil); err != nil {
			return fmt.Errorf("restore: keeping the current database: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore: %w", err)
	}
	if err := writeAtomically(db, func(f *os.File) error { return copyFile(in, f) }, store.VerifyFile); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	fmt.Fprintf(stdout, "restored %s to %s\n", in, db)
	if kept != "" {
		fmt.Fprintf(stdout, "the database it replaced is kept as %s\n", kept)
	}
	return nil
}

func copyFile(src string, w io.Writer) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

// backupPrefix and backupSuffix name scheduled backups: vmpooler-<UTC time>.db.
const backupPrefix, backupSuffix = "vmpooler-", ".db"

// backupLoop takes a scheduled backup whenever the newest one in
// backup_dir is older than backup_interval hours (so restarts do not
// postpone it), checking every minute, until ctx ends. Both keys are read
// from the configuration in force, so a reload changes them.
func (d *daemon) backupLoop(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		g := d.cfg.Load().Global
		if g.BackupDir != "" {
			if due, err := backupDue(g.BackupDir, time.Duration(g.BackupInterval)*time.Hour, time.Now()); err != nil {
				d.logger.Error("scheduled backup: reading backup_dir", "dir", g.BackupDir, "err", err)
			} else if due {
				if _, err := d.scheduledBackup(time.Now()); err != nil {
					d.logger.Error("scheduled backup failed", "dir", g.BackupDir, "err", err)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// backupDue reports whether the newest scheduled backup in dir (none if
// dir does not exist) is older than interval.
func backupDue(dir string, interval time.Duration, now time.Time) (bool, error) {
	names, err := scheduledBackups(dir)
	if errors.Is(err, os.ErrNotExist) {
		return true, nil
	} else if err != nil {
		return false, err
	} else if len(names) == 0 {
		return true, nil
	}
	fi, err := os.Stat(filepath.Join(dir, names[len(names)-1]))
	if err != nil {
		return false, err
	}
	return now.Sub(fi.ModTime()) >= interval, nil
}

// scheduledBackup writes one backup into backup_dir and deletes the oldest
// beyond backup_keep. It returns the new file's path.
func (d *daemon) scheduledBackup(now time.Time) (string, error) {
	d.backupMu.Lock()
	defer d.backupMu.Unlock()
	g := d.cfg.Load().Global
	if err := os.MkdirAll(g.BackupDir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(g.BackupDir, backupPrefix+now.UTC().Format("20060102T150405.000Z")+backupSuffix)
	var n int64
	err := writeAtomically(path, func(f *os.File) (err error) {
		n, err = d.st.Backup(f)
		return err
	}, store.VerifyFile)
	if err != nil {
		return "", err
	}
	d.logger.Info("scheduled backup written", "file", path, "bytes", n)
	return path, pruneBackups(g.BackupDir, g.BackupKeep)
}

// scheduledBackups returns the names of the scheduled backups in dir,
// oldest first (their names sort by time).
func scheduledBackups(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if n := e.Name(); e.Type().IsRegular() && strings.HasPrefix(n, backupPrefix) && strings.HasSuffix(n, backupSuffix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names, nil
}

// pruneBackups deletes the oldest scheduled backups beyond keep; other
// files in the directory are left alone.
func pruneBackups(dir string, keep int) error {
	names, err := scheduledBackups(dir)
	if err != nil {
		return err
	}
	var errs []error
	for len(names) > keep {
		errs = append(errs, os.Remove(filepath.Join(dir, names[0])))
		names = names[1:]
	}
	return errors.Join(errs...)
}
