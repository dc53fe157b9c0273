package auth

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/internal/errs"
	"golang.org/x/crypto/bcrypt"
)

const fixture = "testdata/htpasswd" // alice/wonderland, bob/builder, carol/s3cret at cost 4

// MustNew returns an Auth for cfg with no store and a logger writing to the
// returned buffer, failing the test on error.
func MustNew(tb testing.TB, cfg *Config) (*Auth, *bytes.Buffer) {
	tb.Helper()
	var buf bytes.Buffer
	a, err := New(cfg, nil, slog.New(slog.NewTextHandler(&buf, nil)))
	if err != nil {
		tb.Fatal(err)
	}
	return a, &buf
}

// hashLine returns "user:<bcrypt hash of password at MinCost>".
func hashLine(tb testing.TB, user, password string) string {
	tb.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	return user + ":" + string(h) + "\n"
}

// writeFile writes s to path and sets its mtime to mtime, so a reload is
// detected without waiting for the clock to tick.
func writeFile(tb testing.TB, path, s string, mtime time.Time) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		tb.Fatal(err)
	}
}

// parseHtpasswdFile parses the htpasswd file at path.
func parseHtpasswdFile(t *testing.T, path string) []htUser {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	users, err := parseHtpasswd(f)
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func TestParseHtpasswd(t *testing.T) {
	t.Run("Fixture", func(t *testing.T) {
		users := parseHtpasswdFile(t, fixture)
		var got []string
		for _, u := range users {
			got = append(got, string(u.name))
		}
		if want := "alice bob carol"; strings.Join(got, " ") != want {
			t.Fatalf("got users %q, want %q", got, want)
		}
	})

	t.Run("CRLFAndComments", func(t *testing.T) {
		in := "# comment\r\n\r\n" + strings.TrimSuffix(hashLine(t, "dave", "pw"), "\n") + "\r\n   \n"
		users, err := parseHtpasswd(strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if len(users) != 1 || string(users[0].name) != "dave" {
			t.Fatalf("got %d users", len(users))
		}
	})

	bcryptHash := "$2y$04$IdtmQPdkOUGPZeGDs.vdP.28U2IMK.wBzMKBMbpgAvLFbDwDndEmS"
	for _, tt := range []struct {
		name, line, hash, want string
	}{
		{"MD5", "eve:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", "not bcrypt"},
		{"SHA1", "eve:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "not bcrypt"},
		{"Crypt", "eve:rqXexS6ZhobKA", "rqXexS6ZhobKA", "not bcrypt"},
		{"SHA512Crypt", "eve:$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/", "$6$saltsalt$qFmFH.bQmmtXzyBY0s9v7Oicd2z4XSIecDzlB5KiA2/jctKu9YterLp8wwnSq.qc.eoxqOmSuNp2xS0ktL3nh/", "not bcrypt"},
		{"Plain", "eve:hunter2", "hunter2", "not bcrypt"},
		{"TruncatedBcrypt", "eve:" + bcryptHash[:40], bcryptHash[:40], "not bcrypt"},
		{"UnknownBcryptMinor", "eve:$2x$" + bcryptHash[4:], bcryptHash[4:], "not bcrypt"},
		{"NoColon", "eve", "", "want user:hash"},
		{"EmptyName", ":" + bcryptHash, bcryptHash, "empty user name"},
		{"Duplicate", "alice:" + bcryptHash, bcryptHash, `user "alice" already defined on line 2`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := "# users\nalice:" + bcryptHash + "\n\n" + tt.line + "\n"
			_, err := parseHtpasswd(strings.NewReader(in))
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, "line 4") || !strings.Contains(msg, tt.want) {
				t.Fatalf("error %q should name line 4 and say %q", msg, tt.want)
			}
			if tt.hash != "" && strings.Contains(msg, tt.hash) {
				t.Fatalf("error %q shows the hash", msg)
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Run("Disabled", func(t *testing.T) {
		a, _ := MustNew(t, nil)
		if a.Enabled() {
			t.Fatal("enabled without a config")
		}
		if got := errs.ErrorCode(a.Login("alice", "wonderland")); got != errs.ENOTFOUND {
			t.Fatalf("Login code %q, want %q", got, errs.ENOTFOUND)
		}
		var nilAuth *Auth
		if nilAuth.Enabled() {
			t.Fatal("nil Auth enabled")
		}
	})

	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, "# x\nalice:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n", time.Now())
	for _, tt := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"UnknownProvider", Config{Provider: "kerberos"}, []string{`unknown provider "kerberos"`}},
		{"NoProvider", Config{File: fixture}, []string{"provider is required"}},
		{"NoFile", Config{Provider: "htpasswd"}, []string{"needs [auth] file"}},
		{"MissingFile", Config{Provider: "htpasswd", File: filepath.Join(dir, "nope")}, []string{"nope", "no such file"}},
		{"BadEntry", Config{Provider: "htpasswd", File: bad}, []string{bad, "line 2", `user "alice"`, "not bcrypt"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(&tt.cfg, nil, nil)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "$apr1$") {
				t.Errorf("error %q shows a hash", err)
			}
		})
	}
}

func TestLoginHtpasswd(t *testing.T) {
	a, logs := MustNew(t, &Config{Provider: "htpasswd", File: fixture})
	if !a.Enabled() {
		t.Fatal("not enabled")
	}
	for _, tt := range []struct {
		user, password string
		ok             bool
	}{
		{"alice", "wonderland", true}, // $2y$
		{"bob", "builder", true},      // $2a$
		{"carol", "s3cret", true},     // $2b$
		{"alice", "Wonderland", false},
		{"alice", "", false},
		{"alice", "builder", false}, // another user's password
		{"Alice", "wonderland", false},
		{"alic", "wonderland", false},
		{"mallory", "wonderland", false},
		{"", "", false},
	} {
		err := a.Login(tt.user, tt.password)
		if tt.ok && err != nil {
			t.Errorf("Login(%q, %q) = %v, want success", tt.user, tt.password, err)
		} else if !tt.ok && errs.ErrorCode(err) != errs.EUNAUTHORIZED {
			t.Errorf("Login(%q, %q) = %v, want %s", tt.user, tt.password, err, errs.EUNAUTHORIZED)
		}
		if !tt.ok && err != nil && strings.Contains(err.Error(), tt.user) && tt.user != "" {
			t.Errorf("Login error %q names the user; unknown and wrong must look alike", err)
		}
	}
	assertNoSecrets(t, logs.String(), "wonderland", "builder", "$04$")
}

func TestExampleFile(t *testing.T) {
	// The repository's example user, jdoe/secret at cost 10, that the README
	// and the example config use. One comparison: cost 10 is slow under -race.
	users := parseHtpasswdFile(t, "../testdata/htpasswd")
	if len(users) != 1 || string(users[0].name) != "jdoe" {
		t.Fatalf("want one user jdoe, got %d users", len(users))
	}
	if cost, _ := bcrypt.Cost(users[0].hash); cost != 10 {
		t.Errorf("cost %d, want 10", cost)
	}
	if err := bcrypt.CompareHashAndPassword(users[0].hash, []byte("secret")); err != nil {
		t.Fatalf("jdoe/secret: %v", err)
	}
}

func TestHtpasswdReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	alice := hashLine(t, "alice", "wonderland")
	writeFile(t, path, alice, t0)
	a, logs := MustNew(t, &Config{Provider: "htpasswd", File: path})

	if err := a.Login("dave", "pw"); err == nil {
		t.Fatal("dave accepted before being added")
	}

	t.Run("AddUser", func(t *testing.T) {
		writeFile(t, path, alice+hashLine(t, "dave", "pw"), t0.Add(time.Second))
		if err := a.Login("dave", "pw"); err != nil {
			t.Fatalf("dave after adding: %v", err)
		}
	})

	t.Run("RemoveUser", func(t *testing.T) {
		writeFile(t, path, hashLine(t, "dave", "pw"), t0.Add(2*time.Second))
		if err := a.Login("alice", "wonderland"); err == nil {
			t.Fatal("alice accepted after removal")
		}
	})

	t.Run("BrokenFileKeepsLastGood", func(t *testing.T) {
		writeFile(t, path, "dave:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n", t0.Add(3*time.Second))
		if err := a.Login("dave", "pw"); err != nil {
			t.Fatalf("dave after a broken edit: %v", err)
		}
		if !strings.Contains(logs.String(), "line 1") {
			t.Fatalf("broken reload not logged with its line: %s", logs)
		}
		assertNoSecrets(t, logs.String(), "W6ph5Mm5Pz8GgiULbPgzG37mj9g")
	})

	t.Run("MissingFileKeepsLastGood", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := a.Login("dave", "pw"); err != nil {
			t.Fatalf("dave after removing the file: %v", err)
		}
	})

	t.Run("Recreated", func(t *testing.T) {
		writeFile(t, path, alice, t0.Add(4*time.Second))
		if err := a.Login("alice", "wonderland"); err != nil {
			t.Fatalf("alice after recreating: %v", err)
		}
		if err := a.Login("dave", "pw"); err == nil {
			t.Fatal("dave accepted after recreating without him")
		}
	})
	_, aliceHash, _ := strings.Cut(strings.TrimSpace(alice), ":")
	assertNoSecrets(t, logs.String(), "wonderland", aliceHash)
}

func TestDummy(t *testing.T) {
	a, logs := MustNew(t, &Config{Provider: "dummy"})
	if !a.Enabled() {
		t.Fatal("not enabled")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "tests only") {
		t.Fatalf("no start-up warning: %q", logs)
	}
	for _, tt := range []struct {
		user, password string
		ok             bool
	}{
		{"alice", "anything", true},
		{"alice", "", true},
		{"alice", "alice", false},
		{"", "", false},
		{"", "x", false},
	} {
		err := a.Login(tt.user, tt.password)
		if tt.ok != (err == nil) {
			t.Errorf("Login(%q, %q) = %v, want ok=%v", tt.user, tt.password, err, tt.ok)
		}
		if err != nil && errs.ErrorCode(err) != errs.EUNAUTHORIZED {
			t.Errorf("Login(%q, %q) code %q", tt.user, tt.password, errs.ErrorCode(err))
		}
	}
}

func assertNoSecrets(tb testing.TB, logs string, secrets ...string) {
	tb.Helper()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			tb.Errorf("logs contain the secret %q:\n%s", s, logs)
		}
	}
}

func BenchmarkLoginHtpasswd(b *testing.B) {
	a, _ := MustNew(b, &Config{Provider: "htpasswd", File: fixture})
	for b.Loop() {
		if err := a.Login("carol", "s3cret"); err != nil {
			b.Fatal(err)
		}
	}
}
