// SPDX-License-Identifier: Apache-2.0

package ldap

import (
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/maildirector/maildirector/auth"
)

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(map[string]string{
		"hosts":            "ldap1.example.com ldap2.example.com:1389",
		"uris":             "ldaps://ldap3.example.com",
		"dn":               "cn=dovecot,dc=example,dc=com",
		"dnpass":           "secret",
		"tls":              "yes",
		"tls_require_cert": "never",
		"base":             "ou=people,dc=example,dc=com",
		"scope":            "onelevel",
		"deref":            "always",
		"auth_bind":        "yes",
		"blocking":         "yes",
		"debug_level":      "0",
		"pass_attrs":       "uid=user, =proxy=y",
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.URIs, " ") != "ldap://ldap1.example.com:389 ldap://ldap2.example.com:1389 ldaps://ldap3.example.com" {
		t.Errorf("URIs %v", s.URIs)
	}
	if !s.StartTLS || !s.AuthBind || s.Scope != goldap.ScopeSingleLevel || s.Deref != goldap.DerefAlways || s.DefaultPassScheme != "CRYPT" {
		t.Errorf("settings %+v", s)
	}
	if len(s.Ignored) != 2 {
		t.Errorf("ignored %v", s.Ignored)
	}
}

func TestParseSettingsErrors(t *testing.T) {
	_, err := ParseSettings(map[string]string{"hostz": "x", "scope": "everything", "ldap_version": "2", "sasl_bind": "yes", "uris": "http://x"})
	for _, want := range []string{"hostz: unknown setting", "scope", "ldap_version", "sasl_bind", "http://x", "base"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}

func TestAttrs(t *testing.T) {
	m, err := parseAttrs("uid=user, userPassword=password, !mailHost, =proxy=y, =host=%{ldap:mailHost:127.0.0.11}, " +
		"quota=userdb_quota_rule=*:bytes=%$, missing=nothere, =flag, mail, =master=%{ldap:masterName}")
	if err != nil {
		t.Fatal(err)
	}
	wantFetch := "uid userPassword mailHost quota missing mail masterName"
	if strings.Join(m.fetch, " ") != wantFetch {
		t.Errorf("fetch %v, want %s", m.fetch, wantFetch)
	}
	e := goldap.NewEntry("uid=alice,dc=example,dc=com", map[string][]string{
		"uid": {"alice"}, "userPassword": {"{SSHA}xyz"}, "MAILHOST": {"127.0.0.12"}, "quota": {"1000"}, "mail": {"a@example.com"},
	})
	f, err := m.fields(e, &auth.Request{User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	want := auth.Fields{"user": "alice", "password": "{SSHA}xyz", "proxy": "y", "host": "127.0.0.12",
		"userdb_quota_rule": "*:bytes=1000", "flag": "", "mail": "a@example.com", "master": ""}
	if len(f) != len(want) {
		t.Errorf("fields %v", f)
	}
	for k, v := range want {
		if got, ok := f[k]; !ok || got != v {
			t.Errorf("field %s = %q (%v), want %q", k, got, ok, v)
		}
	}
	// The default applies when the attribute is missing.
	e2 := goldap.NewEntry("uid=bob", map[string][]string{"uid": {"bob"}})
	f2, _ := m.fields(e2, &auth.Request{User: "bob"})
	if f2["host"] != "127.0.0.11" {
		t.Errorf("default host %q", f2["host"])
	}
	for _, bad := range []string{"@sub=%{ldap:x}", "=host=%{ldap_ptr:x}", "a=", "=host=%q"} {
		if _, err := parseAttrs(bad); err == nil {
			t.Errorf("parseAttrs(%q): no error", bad)
		}
	}
}

func TestEscape(t *testing.T) {
	req := &auth.Request{User: "*)(uid=*"}
	got, err := expandEscaped("(&(objectClass=inetOrgPerson)(uid=%u))", req)
	if err != nil || got != `(&(objectClass=inetOrgPerson)(uid=\2A\29\28uid\3D\2A))` {
		t.Fatalf("got %q, %v", got, err)
	}
	if got := escape("é, a#b\x00"); got != `\C3\A9\2C\20a\23b\00` {
		t.Fatalf("escape: %q", got)
	}
	if _, err := goldap.CompileFilter(`(uid=\2A\29\28uid\3D\2A)`); err != nil {
		t.Fatalf("escaped filter does not compile: %v", err)
	}
}
