// Package logtest holds the log sink the tests of several packages share:
// a Buffer a logger writes to from many goroutines while the test reads it.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is a goroutine-safe log sink: a bytes.Buffer behind a mutex. The
// zero value is ready to use.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p to the buffer.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
