package auth

import (
	"bufio"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// htpasswd is an htpasswd file of bcrypt entries, reloaded when it changes.
type htpasswd struct {
	path   string
	logger *slog.Logger

	mu      sync.RWMutex
	users   []htUser
	dummy   []byte    // hash compared for unknown users, at the file's cost
	modTime time.Time // of the loaded (or last rejected) version
	size    int64
}

type htUser struct {
	name []byte
	hash []byte
}

// openHtpasswd loads path; any problem is an error naming the file and line.
func openHtpasswd(path string, logger *slog.Logger) (*htpasswd, error) {
	h := &htpasswd{path: path, logger: logger}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("auth: htpasswd: %w", err)
	}
	if err := h.load(fi); err != nil {
		return nil, err
	}
	if n := h.count(); n == 0 {
		logger.Warn("auth: htpasswd file has no users; every login will fail", "file", path)
	}
	return h, nil
}

func (h *htpasswd) count() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users)
}

// load reads the file and, if it parses, replaces the user list.
func (h *htpasswd) load(fi os.FileInfo) error {
	f, err := os.Open(h.path)
	if err != nil {
		return fmt.Errorf("auth: htpasswd: %w", err)
	}
	defer f.Close()
	users, err := parseHtpasswd(f)
	if err != nil {
		return fmt.Errorf("auth: htpasswd %s: %w", h.path, err)
	}
	dummy, err := dummyHash(users)
	if err != nil {
		return fmt.Errorf("auth: htpasswd %s: %w", h.path, err)
	}
	h.mu.Lock()
	h.users, h.dummy = users, dummy
	h.modTime, h.size = fi.ModTime(), fi.Size()
	h.mu.Unlock()
	warnExampleUser(users, h.path, h.logger)
	return nil
}

// The example user of the shipped docs (testdata/htpasswd, README).
const exampleUser, examplePassword = "jdoe", "secret"

// warnExampleUser logs a warning while the file holds the documented example
// user with the documented password: anyone who read the README can log in.
func warnExampleUser(users []htUser, path string, logger *slog.Logger) {
	for _, u := range users {
		if string(u.name) == exampleUser && bcrypt.CompareHashAndPassword(u.hash, []byte(examplePassword)) == nil {
			logger.Warn("auth: htpasswd holds the documented EXAMPLE user with its documented password; anyone can get a token: remove that line or change its password",
				"file", path, "user", exampleUser)
			return
		}
	}
}

// reloadIfChanged stats the file and reloads it when its mtime or size
// changed. A file that vanished or no longer parses leaves the last good
// user list in force and is logged once per change.
func (h *htpasswd) reloadIfChanged() {
	fi, err := os.Stat(h.path)
	if err != nil {
		h.mu.Lock()
		report := !h.modTime.IsZero()
		h.modTime, h.size = time.Time{}, -1
		h.mu.Unlock()
		if report {
			h.logger.Error("auth: cannot read htpasswd file; keeping the users loaded before", "file", h.path, "err", err)
		}
		return
	}
	h.mu.RLock()
	same := fi.ModTime().Equal(h.modTime) && fi.Size() == h.size
	h.mu.RUnlock()
	if same {
		return
	}
	if err := h.load(fi); err != nil {
		h.mu.Lock()
		h.modTime, h.size = fi.ModTime(), fi.Size() // do not retry until it changes again
		h.mu.Unlock()
		h.logger.Error("auth: htpasswd file changed but cannot be loaded; keeping the users loaded before", "err", err)
		return
	}
	h.logger.Info("auth: htpasswd file reloaded", "file", h.path, "users", h.count())
}

// check reports whether password is user's. It walks every entry with a
// constant-time name comparison and spends one bcrypt comparison whether or
// not the user exists, so timing does not reveal which users exist.
func (h *htpasswd) check(user, password string) bool {
	h.reloadIfChanged()
	h.mu.RLock()
	hash, found := h.dummy, 0
	name := []byte(user)
	for _, u := range h.users {
		if subtle.ConstantTimeCompare(u.name, name) == 1 {
			hash, found = u.hash, 1
		}
	}
	h.mu.RUnlock()
	err := bcrypt.CompareHashAndPassword(hash, []byte(password))
	return err == nil && found == 1
}

// has reports whether user is in the file (reloaded if it changed), so a
// token of a user removed from the file stops working.
func (h *htpasswd) has(user string) bool {
	h.reloadIfChanged()
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, u := range h.users {
		if string(u.name) == user {
			return true
		}
	}
	return false
}

// parseHtpasswd reads "user:hash" lines. Blank lines and lines starting with
// # are skipped. Only bcrypt ($2a$, $2b$, $2y$) hashes are accepted; errors
// name the line and user but never show the hash.
func parseHtpasswd(r io.Reader) ([]htUser, error) {
	var users []htUser
	seen := make(map[string]int)
	sc := bufio.NewScanner(r)
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("line %d: want user:hash", n)
		}
		if name == "" {
			return nil, fmt.Errorf("line %d: empty user name", n)
		}
		if prev, dup := seen[name]; dup {
			return nil, fmt.Errorf("line %d: user %q already defined on line %d", n, name, prev)
		}
		if !isBcrypt(hash) {
			return nil, fmt.Errorf("line %d: user %q: password hash is not bcrypt (only $2y$, $2a$ and $2b$ entries are supported; create them with htpasswd -B)", n, name)
		}
		seen[name] = n
		users = append(users, htUser{name: []byte(name), hash: []byte(hash)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("line %d: %w", n+1, err)
	}
	return users, nil
}

// isBcrypt reports whether hash is a well-formed bcrypt hash.
func isBcrypt(hash string) bool {
	if len(hash) != 60 {
		return false
	}
	switch hash[:4] {
	case "$2a$", "$2b$", "$2y$":
	default:
		return false
	}
	_, err := bcrypt.Cost([]byte(hash))
	return err == nil
}

// dummyHash returns a hash of a random password at the cost of the first
// entry (bcrypt.DefaultCost for an empty file), compared against for unknown
// users so they take as long as known ones.
func dummyHash(users []htUser) ([]byte, error) {
	cost := bcrypt.DefaultCost
	if len(users) > 0 {
		c, err := bcrypt.Cost(users[0].hash)
		if err != nil {
			return nil, err
		}
		cost = c
	}
	return bcrypt.GenerateFromPassword([]byte(rand.Text()), cost)
}
