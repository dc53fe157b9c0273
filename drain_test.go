package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// At SIGTERM a request that finishes within the bound gets its answer; one
// still running at the bound gets a JSON 503, and shutdown still returns
// nil (exit 0).
func TestShutdownBound(t *testing.T) {
	release := make(chan struct{})
	started := make(chan string, 2)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- r.URL.Path
		if r.URL.Path == "/slow" {
			<-release // stuck past the bound (a handler ignoring its context)
		} else {
			time.Sleep(100 * time.Millisecond) // finishes within the bound
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"ok":true}`)
	})
	defer close(release)
	dr := newDrain(api)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: dr}
	go srv.Serve(ln)
	logs := &logBuf{}
	d := &daemon{logger: slog.New(slog.NewTextHandler(logs, nil)), grace: 300 * time.Millisecond}

	type answer struct {
		code int
		ct   string
		body map[string]any
		err  error
	}
	get := func(path string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			resp, err := http.Get("http://" + ln.Addr().String() + path)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			var body map[string]any
			err = json.NewDecoder(resp.Body).Decode(&body)
			ch <- answer{resp.StatusCode, resp.Header.Get("Content-Type"), body, err}
		}()
		return ch
	}
	slow, quick := get("/slow"), get("/quick")
	<-started
	<-started
	cancelled := false
	if err := d.shutdown(srv, dr, func() { cancelled = true }); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if a := <-quick; a.err != nil || a.code != 200 || a.body["ok"] != true {
		t.Errorf("request finishing within the bound: %+v", a)
	}
	a := <-slow
	if a.err != nil || a.code != 503 || a.body["ok"] != false || !strings.HasPrefix(a.ct, "application/json") {
		t.Errorf("request running at the bound: %+v, want a JSON 503", a)
	}
	if !cancelled {
		t.Error("request contexts not cancelled at the bound")
	}
	if !strings.Contains(logs.String(), "answered 503") || !strings.Contains(logs.String(), "count=1") {
		t.Errorf("log:\n%s", logs)
	}
}
