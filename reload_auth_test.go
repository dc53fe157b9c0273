package main

import (
	"strings"
	"testing"

	"github.com/vmpooler/vmpooler/auth"
)

// [auth] admins, token_ttl and [auth.ldap] are read at start: a reload
// keeps the running values and names each change, never a password.
func TestReloadKeepsAuthKeys(t *testing.T) {
	old := &Config{Auth: &auth.Config{Provider: "ldap", Admins: []string{"alice"}, TokenTTL: 30,
		LDAP: &auth.LDAPConfig{Host: "ldap1", ServiceAccount: &auth.LDAPServiceAccount{UserDN: "cn=svc", Password: "s3cret-old"}}}}
	next := &Config{Auth: &auth.Config{Provider: "ldap", Admins: []string{"bob"}, TokenTTL: 7,
		LDAP: &auth.LDAPConfig{Host: "ldap2", ServiceAccount: &auth.LDAPServiceAccount{UserDN: "cn=svc", Password: "s3cret-new"}}}}
	got := keepRestartOnly(old, next)
	var keys []string
	for _, k := range got {
		keys = append(keys, k.key)
		if strings.Contains(k.running+k.inFile, "s3cret") {
			t.Errorf("%s shows a password: %+v", k.key, k)
		}
	}
	if strings.Join(keys, ",") != "[auth] admins,[auth] token_ttl,[auth.ldap]" {
		t.Errorf("keys %v", keys)
	}
	if next.Auth.Admins[0] != "alice" || next.Auth.TokenTTL != 30 || next.Auth.LDAP.Host != "ldap1" {
		t.Errorf("running values not kept: %+v", next.Auth)
	}
}
