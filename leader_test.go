package main

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vmpooler/vmpooler/store/etcd/etcdtest"
)

// etcdURL is a database URL on the test binary's etcd, under a prefix of
// its own for this run.
func etcdURL(t *testing.T, name string) string {
	return "etcd://" + etcdtest.Shared(t).Endpoint + "/" + uniquePrefix(name)
}

// startLeader writes text as the configuration of replicas "a" and "b",
// starts a and waits until it leads; it returns a and b's configuration.
func startLeader(t *testing.T, text string) (*running, string) {
	t.Helper()
	dir := t.TempDir()
	cfgA, cfgB := filepath.Join(dir, "a.toml"), filepath.Join(dir, "b.toml")
	writeConfig(t, cfgA, text+"\n[etcd]\nreplica = \"a\"\n")
	writeConfig(t, cfgB, text+"\n[etcd]\nreplica = \"b\"\n")
	a := startPooler(t, cfgA)
	waitFor(t, "a leads", func() (bool, any) {
		_, leader, leading := replicaOf(t, a.base)
		return leading && leader == "a", leader
	})
	return a, cfgB
}

// replicaOf returns /status's "replica" member of a pooler.
func replicaOf(t *testing.T, base string) (name, leader string, leading bool) {
	t.Helper()
	var st struct {
		Replica struct {
			Name, Leader string
			Leading      bool
		} `json:"replica"`
	}
	getJSON(t, base+"/api/v1/status", &st)
	return st.Replica.Name, st.Replica.Leader, st.Replica.Leading
}

// TestReplicasOnEtcd runs two poolers on one etcd prefix: one leads and
// runs the manager, the other serves the API and says who leads; a
// checkout on the follower wakes the leader's manager through etcd (the
// loop delay is a minute, so only the kick can refill in time); a leader
// that stops hands over at once.
func TestReplicasOnEtcd(t *testing.T) {
	text := strings.Replace(fakeConfig(etcdURL(t, "replicas"), fakePool("debian", 2)), "check_loop_delay = 1", "check_loop_delay = 60", 1)
	a, cfgB := startLeader(t, text)
	waitReady(t, a.base, map[string]int{"debian": 2})
	b := startPooler(t, cfgB)
	waitFor(t, "b knows a leads", func() (bool, any) {
		name, leader, leading := replicaOf(t, b.base)
		return name == "b" && leader == "a" && !leading, leader
	})
	waitReady(t, b.base, map[string]int{"debian": 2}) // b's counts follow a's writes

	if code, host := checkout(t, b.base, "debian"); code != 200 || host == "" {
		t.Fatalf("checkout on the follower: %d", code)
	}
	start := time.Now()
	waitReady(t, b.base, map[string]int{"debian": 2})
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("refill after a checkout on the follower took %v: the leader was not kicked", took)
	}

	if metrics := scrape(t, b.base); !strings.Contains(metrics, `vmpooler_leading{leader="a",replica="b"} 0`) {
		t.Errorf("/metrics of the follower lacks vmpooler_leading:\n%s", grepLines(metrics, "leading"))
	}

	start = time.Now()
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b leads after a stopped", func() (bool, any) {
		_, leader, leading := replicaOf(t, b.base)
		return leading && leader == "b", leader
	})
	t.Logf("b led %v after a was told to stop", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(a.log.String(), "no longer leading") {
		t.Errorf("a's log does not say it stopped leading:\n%s", a.log)
	}
}

// scrape returns the pooler's /metrics, which must answer 200.
func scrape(t *testing.T, base string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/metrics: %d %s", resp.StatusCode, b)
	}
	return string(b)
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestWaiterOnFollowerIsCloned: a waiting checkout on a replica that does
// not lead, on a pool of size 0, is served: the follower publishes its
// waiters' demand and the leader's manager clones for it.
func TestWaiterOnFollowerIsCloned(t *testing.T) {
	_, cfgB := startLeader(t, fakeConfig(etcdURL(t, "demand"), fakePool("debian", 0)))
	b := startPooler(t, cfgB)
	start := time.Now()
	resp, err := http.Post(b.base+"/api/v1/vm/debian?wait=20", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("waiting checkout on the follower: %d %s, want a VM cloned by the leader for it", resp.StatusCode, body)
	}
	t.Logf("served on the follower in %v: %s", time.Since(start).Round(time.Millisecond), body)
}

// What only the leader's manager sees of the pools (here a foreign VM in a
// pool folder) shows in every replica's /status and /metrics, not only the
// leader's: a load balancer may send an operator to either. (Before, a
// follower showed none of it.)
func TestFollowerShowsLeaderHealth(t *testing.T) {
	text := fakeConfig(etcdURL(t, "health"), fakePool("debian", 1)) + "vms = [\"vmpooler/debian/handmade\"]\n"
	a, cfgB := startLeader(t, text)
	waitReady(t, a.base, map[string]int{"debian": 1})
	b := startPooler(t, cfgB)
	foreign := func(base string) any {
		var st struct {
			Pools map[string]struct {
				Foreign struct {
					Count int      `json:"count"`
					VMs   []string `json:"vms"`
				} `json:"foreign"`
			} `json:"pools"`
		}
		getJSON(t, base+"/api/v1/status", &st)
		return st.Pools["debian"].Foreign
	}
	for _, r := range []*running{a, b} {
		waitFor(t, "the foreign VM in "+r.base+"'s /status", func() (bool, any) {
			f := foreign(r.base)
			return strings.Contains(fmt.Sprint(f), "{1 [vmpooler/debian/handmade]}"), f
		})
		if m := scrape(t, r.base); !strings.Contains(m, `vmpooler_foreign_vms{pool="debian"} 1`) {
			t.Errorf("%s's /metrics: %s", r.base, grepLines(m, "foreign"))
		}
	}
}
