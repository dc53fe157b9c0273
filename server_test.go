package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// shortTimeouts makes the server's timeouts short for one test.
func shortTimeouts(t *testing.T, header, read, write time.Duration) {
	t.Helper()
	old := [3]time.Duration{readHeaderTimeout, readTimeout, writeTimeout}
	readHeaderTimeout, readTimeout, writeTimeout = header, read, write
	t.Cleanup(func() { readHeaderTimeout, readTimeout, writeTimeout = old[0], old[1], old[2] })
}

// serve runs newHTTPServer(h) on a local listener limited to maxConns.
func serve(t *testing.T, h http.Handler, maxConns int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(h)
	go srv.Serve(limitListener(ln, maxConns))
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestSlowBodyIsCutOff: a client that sends its body at a trickle loses
// the connection after ReadTimeout instead of holding it for ever.
func TestSlowBodyIsCutOff(t *testing.T) {
	shortTimeouts(t, time.Second, 300*time.Millisecond, time.Second)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.WriteHeader(http.StatusBadRequest)
	}), 0)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "PUT /vm/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	start := time.Now()
	_, err = io.ReadAll(bufio.NewReader(c)) // the answer, then EOF when the server closes
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after %v: no read timeout", time.Since(start))
	}
}

// TestConnectionCap: with max_connections = 1, a second client waits while
// the first holds its connection, and is served once it closes.
func TestConnectionCap(t *testing.T) {
	shortTimeouts(t, 5*time.Second, 5*time.Second, 5*time.Second)
	addr := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), 1)
	hold, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the server accept it
	client := &http.Client{Timeout: 300 * time.Millisecond}
	if res, err := client.Get("http://" + addr + "/"); err == nil {
		res.Body.Close()
		t.Fatal("second connection served while the first holds the only slot")
	}
	hold.Close()
	client.Timeout = 3 * time.Second
	res, err := client.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("after the first closed: %v", err)
	}
	res.Body.Close()
}
