package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/pool"
)

// FuzzPoolList checks the a+b+a path parser: counts add up to the
// segments, names are unique and non-empty, no count passes the limit.
func FuzzPoolList(f *testing.F) {
	for _, s := range []string{"a", "a+b+a", "debian-7-i386+debian-7-i386+centos-7.2-x86_64", "+", "a++b", "a+", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		wants, err := parsePoolList(list)
		if err != nil {
			if errs.ErrorCode(err) != errs.EINVALID {
				t.Fatalf("error %v, want EINVALID", err)
			}
			return
		}
		if n := strings.Count(list, "+") + 1; n > MaxPoolListNames {
			t.Fatalf("%d names accepted, want at most %d", n, MaxPoolListNames)
		}
		total, seen := 0, map[string]bool{}
		for _, w := range wants {
			if w.Name == "" || strings.Contains(w.Name, "+") || seen[w.Name] {
				t.Fatalf("bad name %q in %v", w.Name, wants)
			}
			if w.Count < 1 || w.Count > pool.MaxCheckoutCount {
				t.Fatalf("bad count %d", w.Count)
			}
			seen[w.Name] = true
			total += w.Count
		}
		if n := strings.Count(list, "+") + 1; total != n {
			t.Fatalf("counts add up to %d, want %d segments", total, n)
		}
	})
}

// FuzzTags checks the tags object of a PUT body: whatever it holds, at
// most maxTags come out, each with a valid key and a short value free of
// control characters, or the problems are listed.
func FuzzTags(f *testing.F) {
	for _, s := range []string{`{"project":"demo"}`, `{"a":1,"b":true,"c":null}`, `{"a b":"x"}`, `[]`, `"x"`, `{"a":{"b":1}}`,
		`{"a":"\u0000"}`, manyTags(maxTags + 1)[8 : len(manyTags(maxTags+1))-1]} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var failures []string
		tags := parseTags(json.RawMessage(raw), &failures)
		if len(tags) > maxTags {
			t.Fatalf("%d tags passed, want at most %d", len(tags), maxTags)
		}
		for k, v := range tags {
			if !validTagKey(k) || len(v) > maxTagValue || strings.ContainsFunc(v, func(r rune) bool { return r < ' ' || r == 0x7f }) {
				t.Fatalf("tag %q=%q passed", k, v)
			}
		}
	})
}

// fuzzHandler is the API on a real store with a few ready VMs, for fuzzing
// in-process (no sockets).
func fuzzHandler(f *testing.F) http.Handler {
	e := mustEnv(f, envOptions{allowedTags: []string{"project", "user"}})
	e.addReady("debian-7-i386", "r1", "r2")
	e.addReady("debian-7-x86_64", "x1")
	if _, err := e.svc.Checkout([]pool.Want{{Name: "debian-7-i386", Count: 1}}, pool.Caller{}); err != nil {
		f.Fatal(err)
	}
	return New(Config{}, e.svc, e.auth, e.st, nil)
}

// checkAnswer fails unless an answer is JSON with an ok key and not a 5xx
// other than 503 (pool empty).
func checkAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("status %d, body not a JSON object: %v\n%s", rec.Code, err, rec.Body)
	}
	if _, ok := body["ok"]; !ok {
		t.Fatalf("no ok key: %s", rec.Body)
	}
	if (rec.Code < 300) != (body["ok"] == true) {
		t.Fatalf("status %d with ok %v", rec.Code, body["ok"])
	}
}

// FuzzBody sends arbitrary bodies to POST /vm and PUT /vm/<host>.
func FuzzBody(f *testing.F) {
	for _, s := range []string{`{"debian-7-i386":"1"}`, `{"debian-7-i386":2,"debian-7-x86_64":"1"}`, `{"lifetime":"2"}`,
		`{"tags":{"project":"demo","user":"jdoe"}}`, `{"lifetime":3,"tags":{"project":true}}`, `[]`, `null`, `"x"`, `{`, ``,
		`{"tags":{"project":{"a":[1]}}}`, `{"lifetime":1e400}`, `{"debian-7-i386":"-1"}`} {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, body string) {
		for _, target := range []struct{ method, path string }{{"POST", "/api/v1/vm"}, {"PUT", "/api/v1/vm/r1"}} {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(target.method, target.path, strings.NewReader(body)))
			checkAnswer(t, rec)
		}
	})
}

// FuzzHostname checks the hostname parser and GET /vm/<name>.
func FuzzHostname(f *testing.F) {
	for _, s := range []string{"r1", "r1.company.com", "R1.", ".r1", "a..b", "bad!host", strings.Repeat("a", 64), "x_y-z.example"} {
		f.Add(s)
	}
	h := fuzzHandler(f)
	f.Fuzz(func(t *testing.T, name string) {
		short, err := parseHost(name)
		if err == nil {
			if short == "" || strings.Contains(short, ".") || !strings.HasPrefix(name, short) || len(name) > 253 || !utf8.ValidString(name) {
				t.Fatalf("parseHost(%q) = %q", name, short)
			}
		}
		if strings.Trim(name, "/") == "" {
			return // the path is GET /vm: the pool list, an array
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.URL.Path = "/api/v1/vm/" + name
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		checkAnswer(t, rec)
	})
}
