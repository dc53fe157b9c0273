package main

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// drain wraps the API so that shutdown can answer the requests still
// running at its bound with a JSON 503 instead of a dropped connection.
// Each response goes through a drainWriter; cut writes the 503 to those
// that have not started their answer and drops what their handlers write
// afterwards.
type drain struct {
	next http.Handler
	mu   sync.Mutex
	live map[*drainWriter]struct{}
	wg   sync.WaitGroup
}

func newDrain(next http.Handler) *drain {
	return &drain{next: next, live: make(map[*drainWriter]struct{})}
}

func (d *drain) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	dw := &drainWriter{w: w, h: make(http.Header)}
	d.mu.Lock()
	d.live[dw] = struct{}{}
	d.wg.Add(1)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.live, dw)
		d.mu.Unlock()
		d.wg.Done()
	}()
	d.next.ServeHTTP(dw, r)
}

// shutdownBody is the answer to a request still running at the shutdown bound.
const shutdownBody = `{
  "ok": false,
  "error": "the server is shutting down; retry against the restarted pooler"
}
`

// cut answers every running request that has not started its answer with
// 503 and returns how many it answered.
func (d *drain) cut() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for dw := range d.live {
		if dw.cut() {
			n++
		}
	}
	return n
}

// wait waits up to timeout for the running handlers to return.
func (d *drain) wait(timeout time.Duration) {
	done := make(chan struct{})
	go func() { d.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

var errCut = errors.New("response already answered 503: the server is shutting down")

// drainWriter gives the handler its own header map, so cut never races
// with a handler setting headers, and serialises writes with cut.
type drainWriter struct {
	w       http.ResponseWriter
	h       http.Header
	mu      sync.Mutex
	started bool // the handler's status line is out
	isCut   bool // cut answered: the handler's writes are dropped
}

func (dw *drainWriter) Header() http.Header { return dw.h }

func (dw *drainWriter) WriteHeader(code int) {
	dw.mu.Lock()
	defer dw.mu.Unlock()
	dw.writeHeader(code)
}

func (dw *drainWriter) writeHeader(code int) {
	if dw.isCut || dw.started {
		return
	}
	dw.started = true
	h := dw.w.Header()
	for k, v := range dw.h {
		h[k] = v
	}
	dw.w.WriteHeader(code)
}

func (dw *drainWriter) Write(b []byte) (int, error) {
	dw.mu.Lock()
	defer dw.mu.Unlock()
	if dw.isCut {
		return 0, errCut
	}
	dw.writeHeader(http.StatusOK)
	return dw.w.Write(b)
}

// Flush passes on to the connection (the metrics handler may stream).
func (dw *drainWriter) Flush() {
	dw.mu.Lock()
	defer dw.mu.Unlock()
	if f, ok := dw.w.(http.Flusher); ok && !dw.isCut {
		dw.writeHeader(http.StatusOK)
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (dw *drainWriter) Unwrap() http.ResponseWriter { return dw.w }

// cut writes the 503 if the handler has not started its answer. It does
// not wait for a handler stuck in a write (then its answer is under way).
func (dw *drainWriter) cut() bool {
	if !dw.mu.TryLock() {
		return false
	}
	defer dw.mu.Unlock()
	if dw.started || dw.isCut {
		return false
	}
	dw.isCut = true
	h := dw.w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(shutdownBody)))
	h.Set("Connection", "close")
	h.Set("Retry-After", "5")
	dw.w.WriteHeader(http.StatusServiceUnavailable)
	dw.w.Write([]byte(shutdownBody))
	if f, ok := dw.w.(http.Flusher); ok {
		f.Flush()
	}
	return true
}
