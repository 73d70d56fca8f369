// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// configSeeds are configurations from the README and the tests.
var configSeeds = []string{
	issueExample,
	`
listen:
  - {protocol: imap, address: "127.0.0.1:143"}
  - {protocol: imaps, address: "127.0.0.1:993"}
  - {protocol: pop3, address: "[::1]:110", tls: starttls}
  - {protocol: sieve, address: "127.0.0.1:4190"}
  - {protocol: lmtp, address: /run/maildirector/lmtp, allow_networks: [0.0.0.0/0, "::/0"]}
tls: {cert: c.pem, key: k.pem}
trusted_networks: [127.0.0.0/8, "::1"]
allow_plaintext: true
auth:
  mechanisms: plain login cram-md5 scram-sha-256 scram-sha-256-plus oauthbearer
  master_user_separator: "*"
  default_realm: example.org
  username_format: "%Lu"
  cache: {size: 10M, ttl: 1h, negative_ttl: 1h}
passdb:
  - {driver: static, args: nopassword, master: true, pass: true}
  - {driver: ldap, args: /etc/dovecot/dovecot-ldap.conf.ext, result_failure: return-fail}
  - {driver: sql, settings: {driver: mysql}}
userdb:
  - {driver: ldap, args: /etc/dovecot/dovecot-ldap.conf.ext}
director:
  backends: [127.0.0.11, "127.0.0.20-127.0.0.22@fast 50"]
  user_expire: 15m
  health: {interval: 10s, timeout: 5s, fall: 3, rise: 2, check: banner, protocol: imap}
backend:
  ports: {imap: 1143}
  hosts:
    127.0.0.12: {ports: {imap: 2143}}
limits: {max_auth_failures: 3}
log: {level: debug, format: json}
`,
	"admin:\n  socket: /run/maildirector/director-admin\n  listen: 127.0.0.1:8080\n  token_file: /etc/maildirector/admin-tokens\n",
	"listen: [{protocol: pop4, address: nowhere}]\ntrusted_networks: [10.0.0.0/33]\nlog: {level: loud}\n",
	"directr:\n  x: 1\n",
	"",
	"{",
	"listen: &a [*a]",
	"auth: {cache: {size: 99999999999G}}",
	"director: {user_expire: 1000000h, backends: [127.0.0.1]}",
}

// FuzzParse loads YAML configurations. Whatever it takes holds its
// defaults already and passes its own validation: written back as YAML
// and loaded again, it is the same configuration.
func FuzzParse(f *testing.F) {
	for _, s := range configSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("%q: loaded, then cannot be written: %v", data, err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("%q loaded, written as\n%s\nand refused: %v", data, out, err)
		}
		// Compared as written: YAML cannot tell an empty list from none.
		if out2, err := yaml.Marshal(again); err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("%q loaded and written as\n%s\nthen loaded and written as\n%s", data, out, out2)
		}
	})
}

// FuzzParseByteSize: a size it takes is not negative (no overflow) and
// reads back as written in bytes.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"10M", "512k", "1G", "1024", "2MB", "0", " 3 kb ", "x", "-1", "10X", "9223372036854775807", "8589934592G", "bM"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("%q is %d bytes", s, n)
		}
		if back, err := ParseByteSize(strconv.FormatInt(int64(n), 10)); err != nil || back != n {
			t.Fatalf("%q is %d bytes, which reads back as %d, %v", s, n, back, err)
		}
	})
}

// FuzzReadConfExt reads a .conf.ext file (next to it, inc.conf.ext, for
// !include). What it takes has clean, trimmed keys, each with where it was
// set; and written back as `key = "value"` lines it reads the same.
// Inputs that name a path outside the test's directory are skipped: an
// !include of /dev/zero or /proc would test the machine, not the reader.
func FuzzReadConfExt(f *testing.F) {
	for _, s := range []string{
		`# Dovecot 2.3 style
hosts = ldap1.example.com ldap2.example.com
dn = cn=dovecot,dc=example,dc=com
dnpass = "s3 \"cret"
!include inc.conf.ext
!include_try missing.conf.ext
base = ou=people,\
  dc=example,dc=com
pass_attrs = uid=user, userPassword=password, \
  =proxy=y
pass_filter = (&(objectClass=inetOrgPerson)(uid=%u))
`,
		"driver = mysql\nconnect = host=127.0.0.1 dbname=mail user=dovecot password=\"pw\"\ndefault_pass_scheme = SHA512-CRYPT\n" +
			"password_query = SELECT username AS user, password FROM users WHERE username = '%n' AND domain = '%d'\n",
		"!include *.conf.ext\n", "!include_try \"inc.conf.ext\"\n", "just words\n", " = empty key\n", "k = \"\n", "k = \\\n",
		"k = \"a\\\\\"\n", "!includex = 1\n", "#k = v\nk2=v2\r\n", "k = v \\\n\\\n\\\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.Contains(data, []byte("!include")) && (bytes.ContainsAny(data, `/\`) || bytes.Contains(data, []byte(".."))) {
			t.Skip("an !include that may leave the directory")
		}
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "inc.conf.ext"), []byte("from_include = yes\nhosts = included\n"), 0o600)
		path := filepath.Join(dir, "main.conf.ext")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := ReadConfExt(path)
		if err != nil {
			return
		}
		var back strings.Builder
		for k, v := range c.Values {
			if k == "" || k != strings.TrimSpace(k) || strings.ContainsAny(k, "=\n") || strings.HasPrefix(k, "#") {
				t.Fatalf("%q gave the key %q", data, k)
			}
			if strings.Contains(v, "\n") {
				t.Fatalf("%q gave %s a value %q across lines", data, k, v)
			}
			if c.Where[k] == "" {
				t.Fatalf("%q: no place for %s", data, k)
			}
			back.WriteString(k + ` = "` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + "\"\n")
		}
		if err := os.WriteFile(path, []byte(back.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := ReadConfExt(path)
		if err != nil || !reflect.DeepEqual(again.Values, c.Values) {
			t.Fatalf("%q read as %q, written as\n%s\nread back as %+v, %v", data, c.Values, back.String(), again, err)
		}
	})
}
