package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/pool"
	"github.com/vmpooler/vmpooler/store"
)

// benchClients is the number of concurrent keep-alive clients.
const benchClients = 32

func benchClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConns: benchClients, MaxIdleConnsPerHost: benchClients, MaxConnsPerHost: benchClients}}
}

// fillReady adds n ready VMs to a pool from several goroutines, so the
// store shares commits.
func (e *env) fillReady(poolName string, n int) {
	e.tb.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, benchClients)
	for range benchClients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				h := fmt.Sprintf("%s-%09d", poolName, i)
				if err := e.st.AddPending(storeVM(h, poolName)); err != nil {
					errs <- err
					return
				}
				if err := e.st.MarkReady(h, ""); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		e.tb.Fatal(err)
	}
}

func BenchmarkFill(b *testing.B) {
	e := mustEnv(b, envOptions{realClock: true})
	start := time.Now()
	e.fillReady("debian-7-i386", b.N)
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "vms/s")
}

// BenchmarkCheckoutReturn runs checkout + DELETE cycles from 32 clients.
// BENCH_DB_DIR puts the database elsewhere (e.g. /dev/shm, to take fsync
// out of the picture).
func BenchmarkCheckoutReturn(b *testing.B) {
	e := mustEnv(b, envOptions{realClock: true, dir: os.Getenv("BENCH_DB_DIR")})
	e.fillReady("debian-7-i386", b.N+benchClients)
	runClients(b, "checkouts/s", func(client *http.Client) error {
		var out struct {
			VM struct {
				Hostname string `json:"hostname"`
			} `json:"debian-7-i386"`
		}
		if err := benchDo(client, "POST", e.srv.URL+"/api/v1/vm/debian-7-i386", &out); err != nil {
			return err
		}
		return benchDo(client, "DELETE", e.srv.URL+"/api/v1/vm/"+out.VM.Hostname, nil)
	})
}

// BenchmarkStatus runs GET /status from 32 clients.
func BenchmarkStatus(b *testing.B) {
	e := mustEnv(b, envOptions{realClock: true})
	e.fillReady("debian-7-i386", 50)
	e.fillReady("debian-7-x86_64", 20)
	runClients(b, "req/s", func(client *http.Client) error {
		return benchDo(client, "GET", e.srv.URL+"/api/v1/status", nil)
	})
}

// runClients runs op from benchClients keep-alive clients until the
// benchmark has run it b.N times, stopping a client at its first error,
// and reports the rate per second as unit.
func runClients(b *testing.B, unit string, op func(client *http.Client) error) {
	client := benchClient()
	b.SetParallelism((benchClients + 1) / 2)
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := op(client); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), unit)
}

func benchDo(c *http.Client, method, url string, out any) error {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(res.Body)
		return fmt.Errorf("%s %s: %d %s", method, url, res.StatusCode, data)
	}
	if out != nil {
		return jsonDecode(res.Body, out)
	}
	_, err = io.Copy(io.Discard, res.Body)
	return err
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

func storeVM(host, poolName string) store.VM { return store.VM{Hostname: host, Pool: poolName} }

// BenchmarkPutTags64 sends PUT /vm/<host> with 64 new tag values each,
// one client at a time, on a day that already holds 100,000 distinct tag
// values, and reports the median and p99 latency. Before the day_tags
// layout each tag re-encoded the whole day.
func BenchmarkPutTags64(b *testing.B) {
	e := mustEnv(b, envOptions{realClock: true, dir: os.Getenv("BENCH_DB_DIR")})
	e.fillReady("debian-7-i386", 1)
	got, err := e.svc.Checkout([]pool.Want{{Name: "debian-7-i386", Count: 1}}, pool.Caller{})
	if err != nil {
		b.Fatal(err)
	}
	host := got["debian-7-i386"][0].Hostname
	const prefill = 100_000
	for i := 0; i < prefill; i += maxTags {
		tags := make(map[string]string, maxTags)
		for j := range maxTags {
			tags[fmt.Sprintf("t%02d", j)] = fmt.Sprintf("https://jenkins.example/job/%d", i+j)
		}
		if err := e.svc.Modify(host, pool.Modification{Tags: tags}, pool.Caller{}); err != nil {
			b.Fatal(err)
		}
	}
	today := time.Now().UTC().Format(time.DateOnly)
	days, err := e.st.Rollups(today, today)
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, vals := range days[0].Tags {
		n += len(vals)
	}
	if n != prefill {
		b.Fatalf("the day holds %d distinct tag values, want %d", n, prefill)
	}
	client := benchClient()
	url := e.srv.URL + "/api/v1/vm/" + host
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		var body strings.Builder
		body.WriteString(`{"tags":{`)
		for j := range 64 {
			if j > 0 {
				body.WriteByte(',')
			}
			fmt.Fprintf(&body, `"t%02d":"bench-%d-%d"`, j, i, j)
		}
		body.WriteString("}}")
		req, _ := http.NewRequest("PUT", url, strings.NewReader(body.String()))
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		lat = append(lat, time.Since(start))
		if res.StatusCode != http.StatusOK {
			b.Fatalf("PUT: %d", res.StatusCode)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkParsePoolList100 parses a POST /vm path of 100 distinct names.
func BenchmarkParsePoolList100(b *testing.B) {
	list := poolList(100)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parsePoolList(list); err != nil {
			b.Fatal(err)
		}
	}
}
