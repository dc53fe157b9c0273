package etcd_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/internal/errs"
	"github.com/vmpooler/vmpooler/store/etcd"
)

func TestParseURL(t *testing.T) {
	good := []struct {
		url       string
		endpoints []string
		prefix    string
		tls       bool
		user      string
		password  string
	}{
		{"etcd://host1:2379,host2:2379/vmpooler", []string{"host1:2379", "host2:2379"}, "vmpooler/", false, "", ""},
		{"etcd://127.0.0.1:2379", []string{"127.0.0.1:2379"}, "vmpooler/", false, "", ""},
		{"etcd://a", []string{"a:2379"}, "vmpooler/", false, "", ""},
		{"etcd://a/", []string{"a:2379"}, "vmpooler/", false, "", ""},
		{"etcds://a:1234,b/pools/prod/", []string{"a:1234", "b:2379"}, "pools/prod/", true, "", ""},
		{"ETCD://[::1]:2379,[fe80::1]/x", []string{"[::1]:2379", "[fe80::1]:2379"}, "x/", false, "", ""},
		{"etcd://me:s%40cret@a:1/p", []string{"a:1"}, "p/", false, "me", "s@cret"},
		{"etcd://a//double//", []string{"a:2379"}, "double/", false, "", ""},
	}
	for _, c := range good {
		cfg, err := etcd.ParseURL(c.url)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", c.url, err)
			continue
		}
		if !slices.Equal(cfg.Endpoints, c.endpoints) || cfg.Prefix != c.prefix || cfg.TLS != c.tls ||
			cfg.Username != c.user || cfg.Password != c.password {
			t.Errorf("ParseURL(%q) = %+v", c.url, cfg)
		}
	}
	bad := []struct{ url, says string }{
		{"", "want etcd://"},
		{"host:2379", "want etcd://"},
		{"http://host:2379", `scheme "http"`},
		{"etcd://", "no host"},
		{"etcd:///prefix", "no host"},
		{"etcd://a,,b", "empty host"},
		{"etcd://a,", "empty host"},
		{"etcd://a:notaport", "bad port"},
		{"etcd://a:0", "bad port"},
		{"etcd://a:70000", "bad port"},
		{"etcd://::1", "brackets"},
		{"etcd://a/p?x=1", "query"},
		{"etcd://user@a", "password"},
		{"etcd://u:secret@a:x", "bad port"},
	}
	for _, c := range bad {
		_, err := etcd.ParseURL(c.url)
		if errs.ErrorCode(err) != errs.EINVALID || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseURL(%q): %v; want EINVALID saying %q", c.url, err, c.says)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("ParseURL(%q) shows the password: %v", c.url, err)
		}
	}
}

func TestOpenChecksTLSFiles(t *testing.T) {
	_, err := etcd.Open(etcd.Config{Endpoints: []string{"127.0.0.1:1"}, CertFile: "cert.pem"})
	if errs.ErrorCode(err) != errs.EINVALID || !strings.Contains(err.Error(), "key_file") {
		t.Errorf("a certificate without a key: %v", err)
	}
	_, err = etcd.Open(etcd.Config{Endpoints: []string{"127.0.0.1:1"}, CAFile: "/nonexistent/ca.pem"})
	if errs.ErrorCode(err) != errs.EINVALID || !strings.Contains(err.Error(), "ca.pem") {
		t.Errorf("a CA file that is not there: %v", err)
	}
}
