package main

import (
	"fmt"
	"reflect"

	"github.com/vmpooler/vmpooler/auth"
)

// keepAuthRestartOnly copies into next the running [auth] keys that are
// read once at start (admins, token_ttl, [auth.ldap]) and returns those
// that differed, so a reload says they need a restart. Only file (the
// htpasswd file) changes live.
func keepAuthRestartOnly(old, next *Config) []restartOnly {
	if old.Auth == nil || next.Auth == nil {
		return nil
	}
	var out []restartOnly
	o, n := old.Auth, next.Auth
	if !reflect.DeepEqual(o.Admins, n.Admins) {
		out = append(out, restartOnly{"[auth] admins", fmt.Sprint(o.Admins), fmt.Sprint(n.Admins)})
		n.Admins = o.Admins
	}
	if o.TokenTTL != n.TokenTTL {
		out = append(out, restartOnly{"[auth] token_ttl", fmt.Sprint(o.TokenTTL), fmt.Sprint(n.TokenTTL)})
		n.TokenTTL = o.TokenTTL
	}
	if !reflect.DeepEqual(o.LDAP, n.LDAP) {
		out = append(out, restartOnly{"[auth.ldap]", describeLDAP(o.LDAP), describeLDAP(n.LDAP)})
		n.LDAP = o.LDAP
	}
	return out
}

// describeLDAP shows an [auth.ldap] section without its password.
func describeLDAP(l *auth.LDAPConfig) string {
	if l == nil {
		return "(none)"
	}
	sa := "none"
	if l.ServiceAccount != nil {
		sa = l.ServiceAccount.UserDN
	}
	return fmt.Sprintf("host=%s port=%d base=%v user_object=%v encryption=%s service_account=%s",
		l.Host, l.Port, l.Base, l.UserObject, l.Encryption, sa)
}
