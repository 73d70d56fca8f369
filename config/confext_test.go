// SPDX-License-Identifier: Apache-2.0

package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadConfExt(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret.conf.ext"), []byte("dnpass = \"s3 \\\"cret\"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "dovecot-ldap.conf.ext"), []byte(`# Dovecot 2.3 style
hosts = ldap1.example.com ldap2.example.com
dn = cn=dovecot,dc=example,dc=com
!include secret.conf.ext
!include_try missing.conf.ext
base = ou=people,\
  dc=example,dc=com
pass_attrs = uid=user, userPassword=password, \
  =proxy=y
pass_filter = (&(objectClass=inetOrgPerson)(uid=%u))
base = ou=people,dc=example,dc=com
`), 0o644)
	c, err := ReadConfExt(filepath.Join(dir, "dovecot-ldap.conf.ext"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"hosts":       "ldap1.example.com ldap2.example.com",
		"dn":          "cn=dovecot,dc=example,dc=com",
		"dnpass":      `s3 "cret`,
		"base":        "ou=people,dc=example,dc=com",
		"pass_attrs":  "uid=user, userPassword=password, =proxy=y",
		"pass_filter": "(&(objectClass=inetOrgPerson)(uid=%u))",
	}
	for k, v := range want {
		if c.Values[k] != v {
			t.Errorf("%s = %q, want %q", k, c.Values[k], v)
		}
	}
	if len(c.Values) != len(want) {
		t.Errorf("extra keys: %v", c.Values)
	}
	if w := c.Where["pass_filter"]; filepath.Base(w) != "dovecot-ldap.conf.ext:10" {
		t.Errorf("Where = %q", w)
	}
}

func TestReadConfExtErrors(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"nokey.conf.ext":   "just words\n",
		"include.conf.ext": "!include nowhere.conf.ext\n",
		"loop.conf.ext":    "!include loop.conf.ext\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		if _, err := ReadConfExt(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
