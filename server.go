package main

import (
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Server limits: a slow or stalled client holds a connection (and whatever
// its answer holds in memory) only this long. Variables so that tests can
// shorten them.
var (
	readHeaderTimeout = 10 * time.Second // request line and headers
	readTimeout       = 30 * time.Second // the whole request, body included (bodies are ≤ 1 MiB)
	writeTimeout      = 60 * time.Second // from the end of the headers to the end of the answer
	idleTimeout       = 2 * time.Minute  // between keep-alive requests
)

// defaultMaxConnections is [config] max_connections when unset.
const defaultMaxConnections = 512

// newHTTPServer returns the API server with its timeouts set.
func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
	}
}

// limitListener caps the connections served at once at n (≤ 0: the
// default); further clients wait in the kernel's accept queue until one
// closes, instead of each costing a goroutine and buffers.
func limitListener(ln net.Listener, n int) net.Listener {
	if n <= 0 {
		n = defaultMaxConnections
	}
	return netutil.LimitListener(ln, n)
}
