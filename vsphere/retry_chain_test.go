package vsphere

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sync"
	"testing"

	"github.com/vmpooler/vmpooler/internal/simtest"
	"github.com/vmpooler/vmpooler/pool"
)

// resetProxy is an HTTPS proxy in front of a vCenter that, for an armed
// SOAP method, forwards the request (vCenter runs it) and then resets the
// client's connection instead of answering: a connection lost after the
// request got through.
type resetProxy struct {
	target string // https://host:port
	client *http.Client

	mu    sync.Mutex
	armed map[string]int // method → resets left
	seen  map[string]int // method → requests forwarded
}

var soapMethodRE = regexp.MustCompile(`<(?:\w+:)?Body[^>]*>\s*<(?:\w+:)?(\w+)`)

// newResetProxy serves a resetProxy to target on a random port.
func newResetProxy(t *testing.T, target string) (*httptest.Server, *resetProxy) {
	t.Helper()
	p := &resetProxy{
		target: target,
		client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}},
		armed:  map[string]int{},
		seen:   map[string]int{},
	}
	srv := httptest.NewTLSServer(p)
	t.Cleanup(srv.Close)
	return srv, p
}

func (p *resetProxy) arm(method string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed[method]++
}

func (p *resetProxy) count(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[method]
}

func (p *resetProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var method string
	if m := soapMethodRE.FindSubmatch(body); m != nil {
		method = string(m[1])
	}
	p.mu.Lock()
	p.seen[method]++
	reset := p.armed[method] > 0
	if reset {
		p.armed[method]--
	}
	p.mu.Unlock()

	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	res, err := p.client.Do(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer res.Body.Close()
	resBody, err := io.ReadAll(res.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	if reset {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		raw := conn
		if tc, ok := conn.(*tls.Conn); ok {
			raw = tc.NetConn() // no close_notify: a plain reset
		}
		if tcp, ok := raw.(*net.TCPConn); ok {
			_ = tcp.SetLinger(0)
		}
		_ = raw.Close()
		return
	}
	for k, vs := range res.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(resBody)
}

// Through the Provider's real connection chain, a connection reset after
// vCenter got the request makes a read go again, and a snapshot or a
// reconfigure not: the call fails, and the next attempt finds what the
// first one made instead of making it twice.
func TestResetAfterRequestThroughProxy(t *testing.T) {
	pools := testPools()
	addr := serveForTest(t, pools)
	srv, proxy := newResetProxy(t, "https://"+addr)
	p := New(Config{Server: srv.URL + "/sdk", Username: "user", Password: "pass", Insecure: true,
		ReadyCheck: "tools"}, pools, simtest.Logger())
	if err := p.Open(ctxT(t)); err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer p.Close()
	pc := pools[1]
	mustClone(t, p, pc, "reset")
	loc := locFor(pc, "reset")

	before := proxy.count("RetrievePropertiesEx")
	proxy.arm("RetrievePropertiesEx")
	if _, err := p.List(ctxT(t), pc.Datacenter, pc.Folder); err != nil {
		t.Errorf("List after one reset: %v, want it sent again and answered", err)
	}
	if n := proxy.count("RetrievePropertiesEx") - before; n < 2 {
		t.Errorf("RetrievePropertiesEx forwarded %d times, want the reset one and its retry", n)
	}

	proxy.arm("CreateSnapshot_Task")
	if err := p.Snapshot(ctxT(t), loc, "reset-snap", true); !errors.Is(err, pool.ErrTransient) {
		t.Errorf("Snapshot with its answer lost: %v, want ErrTransient", err)
	}
	if err := p.Snapshot(ctxT(t), loc, "reset-snap", true); err != nil {
		t.Errorf("Snapshot again: %v, want success (the first one was made)", err)
	}
	if n := proxy.count("CreateSnapshot_Task"); n != 1 {
		t.Errorf("CreateSnapshot_Task sent %d times, want once", n)
	}

	disks := len(vmDisks(t, p, loc))
	proxy.arm("ReconfigVM_Task")
	if err := p.AddDisk(ctxT(t), loc, 1, "4-1"); !errors.Is(err, pool.ErrTransient) {
		t.Errorf("AddDisk with its answer lost: %v, want ErrTransient", err)
	}
	if err := p.AddDisk(ctxT(t), loc, 1, "4-1"); err != nil {
		t.Errorf("AddDisk again: %v, want success (the first one added it)", err)
	}
	if n := proxy.count("ReconfigVM_Task"); n != 1 {
		t.Errorf("ReconfigVM_Task sent %d times, want once", n)
	}
	if got := len(vmDisks(t, p, loc)); got != disks+1 {
		t.Errorf("disks %d → %d, want exactly one more", disks, got)
	}
	if got := vmSnapshots(t, p, loc); !slices.Equal(got, []string{"reset-snap"}) {
		t.Errorf("snapshots %v, want [reset-snap]", got)
	}
}
