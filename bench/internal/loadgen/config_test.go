package loadgen

import (
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	good := []string{"http://127.0.0.1:4567", "http://127.1.2.3:80/", "http://localhost:1", "http://LOCALHOST", "http://[::1]:4567", "https://127.0.0.1"}
	for _, u := range good {
		if err := CheckLoopback(u); err != nil {
			t.Errorf("CheckLoopback(%q) = %v", u, err)
		}
	}
	bad := []string{"http://10.0.0.1:4567", "http://example.com", "http://localhost.example.com", "ftp://127.0.0.1",
		"127.0.0.1:4567", "http://", "http://0.0.0.0:4567", "http://[::]:1", "http://u:p@127.0.0.1", "http://127.0.0.1?x=1",
		"http://[::ffff:10.0.0.1]", "http://2130706433"}
	for _, u := range bad {
		if err := CheckLoopback(u); err == nil {
			t.Errorf("CheckLoopback(%q) accepted a non-loopback URL", u)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := Config{URL: "http://127.0.0.1:1", Clients: 1, Duration: time.Second, Max: 1, Mode: ModeCheckout, Pools: []string{"p"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"clients":  func(c *Config) { c.Clients = 0 },
		"many":     func(c *Config) { c.Clients = MaxClients + 1 },
		"duration": func(c *Config) { c.Duration = 0 },
		"max":      func(c *Config) { c.Max = 0 },
		"mode":     func(c *Config) { c.Mode = "x" },
		"no pool":  func(c *Config) { c.Pools = nil },
		"bad pool": func(c *Config) { c.Pools = []string{"../token"} },
		"url":      func(c *Config) { c.URL = "http://192.168.1.1" },
	} {
		c := ok
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func TestAPIBase(t *testing.T) {
	for in, want := range map[string]string{
		"http://127.0.0.1:4567":         "http://127.0.0.1:4567/api/v1",
		"http://127.0.0.1:4567/":        "http://127.0.0.1:4567/api/v1",
		"http://127.0.0.1:4567/api/v1/": "http://127.0.0.1:4567/api/v1",
		"http://127.0.0.1:4567/pooler":  "http://127.0.0.1:4567/pooler/api/v1",
	} {
		if got := apiBase(in); got != want {
			t.Errorf("apiBase(%q) = %q, want %q", in, got, want)
		}
	}
}
