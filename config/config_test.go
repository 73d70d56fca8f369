// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"
	"time"
)

// issueExample is the configuration the first issue requires to work as it
// stands.
const issueExample = `
listen:
  - protocol: imap
    address: 127.0.0.1:10143
passdb:
  - driver: static
    args: proxy=y nopassword=y
director:
  backends: [127.0.0.11, 127.0.0.12]   # like director_mail_servers; "IP[@tag]", ranges "A-B", optional vhost count
  user_expire: 15m
`

func TestIssueExample(t *testing.T) {
	c, err := Parse([]byte(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	if c.Director.UserExpire != 15*time.Minute || len(c.Director.Backends) != 2 || c.Passdb[0].Args != "proxy=y nopassword=y" {
		t.Fatalf("decoded %+v", c)
	}
	if c.Listen[0].TLS != "none" || c.Backend.Ports.IMAP != 143 || c.Limits.MaxAuthFailures != 3 {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestUnknownKeyNamesItsLine(t *testing.T) {
	_, err := Parse([]byte(issueExample + "directr:\n  x: 1\n"))
	if err == nil || !strings.Contains(err.Error(), "line 11") || !strings.Contains(err.Error(), "directr") {
		t.Fatalf("got %v", err)
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	_, err := Parse([]byte(`
listen:
  - protocol: pop4
    address: nowhere
  - protocol: imaps
    address: 127.0.0.1:993
trusted_networks: [10.0.0.0/33]
passdb:
  - driver: ldapp
log: {level: loud}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"pop4", "nowhere", "tls implicit needs tls.cert", "10.0.0.0/33", "ldapp", "director.backends", "log.level"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
}

func TestTLSDefaults(t *testing.T) {
	c, err := Parse([]byte(`
listen:
  - {protocol: imap, address: "127.0.0.1:143"}
  - {protocol: imaps, address: "127.0.0.1:993"}
tls: {cert: c.pem, key: k.pem}
trusted_networks: [127.0.0.0/8, "::1"]
passdb: [{driver: static, args: nopassword}]
director: {backends: [127.0.0.11]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen[0].TLS != "starttls" || c.Listen[1].TLS != "implicit" {
		t.Fatalf("tls modes %q %q", c.Listen[0].TLS, c.Listen[1].TLS)
	}
	if len(c.Trusted()) != 2 || c.Trusted()[1].Bits() != 128 {
		t.Fatalf("trusted %v", c.Trusted())
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"10M": 10 << 20, "512k": 512 << 10, "1G": 1 << 30, "1024": 1024, "2MB": 2 << 20, "0": 0} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("%q: %d, %v", in, got, err)
		}
	}
	for _, bad := range []string{"x", "-1", "10X"} {
		if _, err := ParseByteSize(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestPassdbChainConfig(t *testing.T) {
	c, err := Parse([]byte(`
listen: [{protocol: imap, address: "127.0.0.1:143"}]
auth:
  master_user_separator: "*"
  cache: {size: 10M, ttl: 30m}
passdb:
  - driver: static
    args: nopassword
    master: true
    pass: true
  - driver: ldap
    args: /etc/dovecot/dovecot-ldap.conf.ext
    result_failure: return-fail
  - driver: sql
    settings: {driver: mysql}
userdb:
  - driver: ldap
    args: /etc/dovecot/dovecot-ldap.conf.ext
director: {backends: [127.0.0.11]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.Cache.Size != 10<<20 || c.Auth.Cache.TTL != 30*time.Minute || *c.Auth.Cache.NegativeTTL != time.Hour {
		t.Fatalf("cache %+v", c.Auth.Cache)
	}
	if !c.Passdb[0].Master || c.Passdb[1].ResultFailure != "return-fail" || c.Passdb[2].Settings["driver"] != "mysql" {
		t.Fatalf("passdbs %+v", c.Passdb)
	}
	_, err = Parse([]byte(`
listen: [{protocol: imap, address: "127.0.0.1:143"}]
passdb: [{driver: ldap}, {driver: static, settings: {a: b}}, {driver: pam}]
director: {backends: [127.0.0.11]}
`))
	for _, want := range []string{"passdb[0]: ldap needs args", "passdb[1]: the static driver", "passdb[2]: unknown driver"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func TestDefaultRealm(t *testing.T) {
	const base = `
listen: [{protocol: imap, address: "127.0.0.1:143"}]
passdb: [{driver: static, args: nopassword}]
director: {backends: [127.0.0.11]}
`
	c, err := Parse([]byte(base + "auth: {default_realm: example.org, realm: digest.example.org}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Auth.DefaultRealm != "example.org" || c.Auth.Realm != "digest.example.org" {
		t.Fatalf("auth %+v", c.Auth)
	}
	for _, bad := range []string{`"@example.org"`, `"example .org"`, `"a@b"`} {
		_, err := Parse([]byte(base + "auth: {default_realm: " + bad + "}\n"))
		if err == nil || !strings.Contains(err.Error(), "auth.default_realm") {
			t.Errorf("default_realm %s: %v", bad, err)
		}
	}
}
