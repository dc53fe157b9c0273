// Package nettest holds the loopback listeners the tests of every package
// share: a port where nothing listens (connection refused, or free for a
// server the test starts later) and a server that accepts connections and
// never answers.
//
// It imports nothing of the pooler's, so that any package's tests can use it.
package nettest

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// ClosedPort returns a loopback port where nothing listens: it was free a
// moment ago. A client gets "connection refused"; a server the test starts
// later may listen there.
func ClosedPort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ClosedAddr is ClosedPort as host:port.
func ClosedAddr(tb testing.TB) string {
	tb.Helper()
	return "127.0.0.1:" + strconv.Itoa(ClosedPort(tb))
}

// Accepting listens on a loopback port until the test ends and returns
// its address. It accepts every connection and hands it to handle, which
// may close it; a nil handle holds it open, unanswered. Connections still
// open when the test ends are closed then.
func Accepting(tb testing.TB, handle func(net.Conn)) *net.TCPAddr {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if handle != nil {
				handle(c)
			}
		}
	}()
	tb.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().(*net.TCPAddr)
}
