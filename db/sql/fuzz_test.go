// SPDX-License-Identifier: Apache-2.0

package sql

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

// FuzzCompile turns query templates into parameterized queries. What it
// takes binds, for any request, one argument per placeholder it made,
// and its text is a complete query in itself: with no "%" left in it, it
// compiles again to itself with nothing to bind (so no literal was left
// open for a bound value to close).
func FuzzCompile(f *testing.F) {
	for _, s := range []string{
		"SELECT password FROM users WHERE userid = '%u'",
		"SELECT username AS user, password, 'Y' AS proxy, host FROM users WHERE username = '%n' AND domain = '%d'",
		`SELECT 'y' AS proxy, "static" AS x FROM users WHERE userid = "%n@%d" AND svc = %s`,
		"SELECT `weird col` FROM t WHERE a LIKE 'x%%' AND b = '%{user}'",
		"SELECT 1 WHERE a = 'it''s %u' AND b = 'back\\'slash %Lu'",
		"SELECT 1 WHERE 100%% = %%",
		"SELECT home, uid, gid FROM users WHERE userid = '%u' AND rip = '%{rip}' AND x = %2.3n",
		"SELECT '%u", "SELECT %{user", "SELECT %q", "SELECT `x", "SELECT `%u` FROM t",
	} {
		f.Add(s, "alice@example.com")
	}
	f.Add("SELECT password FROM users WHERE userid = '%u'", "' OR 1=1 -- ")
	f.Fuzz(func(t *testing.T, tmpl, user string) {
		q, err := compile(tmpl)
		if err != nil {
			return
		}
		req := &auth.Request{User: user, Service: "imap", Remote: netip.MustParseAddrPort("192.0.2.7:5555")}
		args, err := q.args(req.Vars())
		if err != nil || len(args) != len(q.params) {
			t.Fatalf("%q: %d arguments for %d parameters, %v", tmpl, len(args), len(q.params), err)
		}
		if strings.Contains(q.text, "%") {
			return
		}
		again, err := compile(q.text)
		if err != nil || again.text != q.text || len(again.params) != 0 {
			t.Fatalf("%q compiled to %q, which compiles to %+v, %v", tmpl, q.text, again, err)
		}
	})
}

// FuzzSplitConnect reads MySQL connect strings: what it takes, written
// back as key="value" (bare where a value holds a quote), reads the same.
func FuzzSplitConnect(f *testing.F) {
	for _, s := range []string{
		`host=db1.example.com host=/run/mysqld/mysqld.sock dbname=mail user=dovecot password="p w" port=3307 connect_timeout=2`,
		`host=[::1] host=::1 dbname=x`, `password="" user=a"b`, `password="unterminated`, `=x`, `k`, "a=1\tb=2  ", `a="x"b=y`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kv, hosts, err := splitConnect(s)
		if err != nil {
			return
		}
		var b strings.Builder
		write := func(k, v string) {
			if strings.Contains(v, `"`) {
				b.WriteString(" " + k + "=" + v)
			} else {
				b.WriteString(" " + k + `="` + v + `"`)
			}
		}
		for _, h := range hosts {
			write("host", h)
		}
		for k, v := range kv {
			if k == "" || strings.ContainsAny(k, "=") {
				t.Fatalf("%q gave the key %q", s, k)
			}
			write(k, v)
		}
		kv2, hosts2, err := splitConnect(b.String())
		if err != nil || !reflect.DeepEqual(kv, kv2) || !reflect.DeepEqual(hosts, hosts2) {
			t.Fatalf("%q read as %q %q, written %q, read back as %q %q, %v", s, kv, hosts, b.String(), kv2, hosts2, err)
		}
	})
}
