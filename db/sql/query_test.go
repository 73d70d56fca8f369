// SPDX-License-Identifier: Apache-2.0

package sql

import (
	"reflect"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

func TestCompile(t *testing.T) {
	req := &auth.Request{User: "Alice@Example.COM", Service: "imap"}
	tests := []struct {
		tmpl, text string
		args       []any
	}{
		{"SELECT password FROM users WHERE userid = '%u'",
			"SELECT password FROM users WHERE userid = ?", []any{"Alice@Example.COM"}},
		{"SELECT password FROM users WHERE username = '%Ln' AND domain = '%Ld'",
			"SELECT password FROM users WHERE username = ? AND domain = ?", []any{"alice", "example.com"}},
		{`SELECT 'y' AS proxy, "static" AS x FROM users WHERE userid = "%n@%d" AND svc = %s`,
			`SELECT 'y' AS proxy, "static" AS x FROM users WHERE userid = ? AND svc = ?`, []any{"Alice@Example.COM", "imap"}},
		// Dovecot turns %% into %, so a LIKE pattern becomes data too.
		{"SELECT `weird col` FROM t WHERE a LIKE 'x%%' AND b = '%{user}'",
			"SELECT `weird col` FROM t WHERE a LIKE ? AND b = ?", []any{"x%", "Alice@Example.COM"}},
		{"SELECT 1 WHERE a = 'it''s %u'", "SELECT 1 WHERE a = ?", []any{"it's Alice@Example.COM"}},
		{"SELECT 1 WHERE 100%% = %%", "SELECT 1 WHERE 100% = %", []any{}},
	}
	for _, tt := range tests {
		q, err := compile(tt.tmpl)
		if err != nil {
			t.Errorf("%q: %v", tt.tmpl, err)
			continue
		}
		args, err := q.args(req.Vars())
		if err != nil || q.text != tt.text || !reflect.DeepEqual(args, tt.args) {
			t.Errorf("%q:\n got %q %v %v\nwant %q %v", tt.tmpl, q.text, args, err, tt.text, tt.args)
		}
	}
}

func TestCompileInjectionStaysData(t *testing.T) {
	q, err := compile("SELECT password FROM users WHERE userid = '%u'")
	if err != nil {
		t.Fatal(err)
	}
	evil := &auth.Request{User: "' OR 1=1 -- "}
	args, _ := q.args(evil.Vars())
	if q.text != "SELECT password FROM users WHERE userid = ?" || args[0] != "' OR 1=1 -- " {
		t.Fatalf("user input reached the query text: %q %v", q.text, args)
	}
}

func TestCompileErrors(t *testing.T) {
	for _, bad := range []string{"SELECT '%u", "SELECT %{user", "SELECT %q", "SELECT `x"} {
		if _, err := compile(bad); err == nil {
			t.Errorf("compile(%q): no error", bad)
		}
	}
}
