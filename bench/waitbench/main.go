// Command waitbench measures waiting checkouts against polling ones: N
// clients ask a running pooler for one VM each of a pool that starts
// empty, either waiting (POST ...?wait=W, one request each) or polling
// (POST every interval until a 200, as clients do with upstream). It
// reports requests sent, the pooler's CPU time (from /proc/<pid>/stat),
// the time until the last client had its VM, duplicates, and, with the
// pooler's log, whether waiters were served in arrival order and the time
// from a VM becoming ready to its client's answer. Loopback only.
//
//	go run ./bench/waitbench -url http://127.0.0.1:4567 -pool p -clients 200 \
//	    -mode wait|poll -pid PID -log pooler.log
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

type result struct {
	client   int
	host     string
	at       time.Time
	requests int
}

func main() {
	base := flag.String("url", "http://127.0.0.1:4567", "pooler URL (loopback only)")
	poolName := flag.String("pool", "", "pool to check out from")
	clients := flag.Int("clients", 200, "clients, one VM each")
	mode := flag.String("mode", "wait", "wait or poll")
	wait := flag.Int("wait", 300, "wait mode: seconds each checkout may wait")
	interval := flag.Duration("interval", time.Second, "poll mode: pause between tries")
	stagger := flag.Duration("stagger", 2*time.Millisecond, "pause between client starts (arrival order)")
	pid := flag.Int("pid", 0, "the pooler's pid, for its CPU time")
	logPath := flag.String("log", "", "the pooler's log, for order and ready-to-answer times")
	limit := flag.Duration("limit", 10*time.Minute, "give up after")
	flag.Parse()
	u, err := url.Parse(*base)
	if err != nil || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
		fail("-url must be a loopback address")
	}
	if *poolName == "" {
		fail("-pool is required")
	}
	cpu0 := cpuTime(*pid)
	start := time.Now()
	deadline := start.Add(*limit)
	client := &http.Client{Timeout: time.Duration(*wait+30) * time.Second}
	results := make([]result, *clients)
	var wg sync.WaitGroup
	for i := range *clients {
		wg.Go(func() {
			r := &results[i]
			r.client = i
			for time.Now().Before(deadline) {
				path := *base + "/api/v1/vm/" + *poolName
				if *mode == "wait" {
					path += "?wait=" + strconv.Itoa(*wait)
				}
				r.requests++
				host, code := checkout(client, path, *poolName)
				if code == http.StatusOK {
					r.host, r.at = host, time.Now()
					return
				}
				if *mode == "wait" && code != http.StatusServiceUnavailable {
					return
				}
				time.Sleep(*interval)
			}
		})
		time.Sleep(*stagger)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := cpuTime(*pid) - cpu0

	requests, served := 0, 0
	hosts := map[string]int{}
	var last time.Time
	for _, r := range results {
		requests += r.requests
		if r.host != "" {
			served++
			hosts[r.host]++
			if r.at.After(last) {
				last = r.at
			}
		}
	}
	dups := 0
	for _, n := range hosts {
		dups += n - 1
	}
	fmt.Printf("mode %s: %d clients, %d served, %d lost, %d handed out twice\n", *mode, *clients, served, *clients-served, dups)
	fmt.Printf("requests sent: %d; last client served after %.1f s; run %.1f s\n", requests, last.Sub(start).Seconds(), elapsed.Seconds())
	if *pid > 0 {
		fmt.Printf("pooler CPU during the run: %.2f s\n", cpu.Seconds())
	}
	if *logPath != "" {
		report(*logPath, results)
	}
}

// checkout POSTs and returns the hostname handed out and the status.
func checkout(c *http.Client, path, poolName string) (string, int) {
	resp, err := c.Post(path, "application/json", nil)
	if err != nil {
		return "", 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", resp.StatusCode
	}
	var out map[string]json.RawMessage
	if json.Unmarshal(body, &out) != nil {
		return "", 0
	}
	var vm struct {
		Hostname string `json:"hostname"`
	}
	json.Unmarshal(out[poolName], &vm)
	return vm.Hostname, resp.StatusCode
}

// report reads the pooler's log: "vm ready" times per host and the order
// of checkout audit lines, against the clients' arrival order and answers.
func report(path string, results []result) {
	f, err := os.Open(path)
	if err != nil {
		fail(err.Error())
	}
	defer f.Close()
	ready := map[string]time.Time{}
	var served []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		at, err := time.Parse(time.RFC3339Nano, field(line, "time"))
		if err != nil {
			continue
		}
		switch {
		case strings.Contains(line, `msg="vm ready"`):
			ready[field(line, "hostname")] = at
		case strings.Contains(line, "msg=audit") && field(line, "action") == "checkout":
			served = append(served, field(line, "hosts"))
		}
	}
	clientOf := map[string]int{}
	var lat []float64
	for _, r := range results {
		if r.host == "" {
			continue
		}
		clientOf[r.host] = r.client
		if t, ok := ready[r.host]; ok {
			lat = append(lat, float64(r.at.Sub(t).Microseconds())/1000)
		}
	}
	var order []int
	for _, h := range served {
		if c, ok := clientOf[h]; ok {
			order = append(order, c)
		}
	}
	inversions := 0
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			inversions++
		}
	}
	fmt.Printf("served in arrival order: %v (%d of %d consecutive pairs out of order)\n", inversions == 0, inversions, max(len(order)-1, 0))
	if len(lat) > 0 {
		slices.Sort(lat)
		fmt.Printf("VM ready -> client answer: p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d VMs)\n",
			pct(lat, 50), pct(lat, 99), lat[len(lat)-1], len(lat))
	}
}

func pct(sorted []float64, p int) float64 {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(min(i, len(sorted))-1, 0)]
}

// field returns the value of key= in a logfmt line.
func field(line, key string) string {
	i := strings.Index(line, " "+key+"=")
	if strings.HasPrefix(line, key+"=") {
		i = -1
	} else if i < 0 {
		return ""
	}
	rest := line[i+len(key)+2:]
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			s, _ := strconv.Unquote(v)
			return s
		}
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

// cpuTime returns the user+system CPU time of pid (0: none).
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "waitbench:", msg)
	os.Exit(2)
}
