// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"strings"
	"testing"
)

func TestParsePath(t *testing.T) {
	addr, params, err := parsePath("FROM:<a@b.example> SIZE=1000 BODY=8BITMIME SMTPUTF8", "FROM:")
	if err != nil || addr != "a@b.example" || params["SIZE"] != "1000" || params["BODY"] != "8BITMIME" {
		t.Fatalf("%q %v %v", addr, params, err)
	}
	if _, ok := params["SMTPUTF8"]; !ok {
		t.Fatal("SMTPUTF8 lost")
	}
	if addr, _, err := parsePath("from: <>", "FROM:"); err != nil || addr != "" {
		t.Fatalf("null path: %q %v", addr, err)
	}
	if addr, _, err := parsePath("TO:<@relay.example:u@d.example>", "TO:"); err != nil || addr != "u@d.example" {
		t.Fatalf("source route: %q %v", addr, err)
	}
	for _, bad := range []string{"TO:u@d", "TO:<u@d", "FROM:<u@d>", "TO:<a b@c>"} {
		if _, _, err := parsePath(bad, "TO:"); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestRecipientDetail(t *testing.T) {
	r := splitRecipient("alice+lists@example.com", "+")
	if r.user != "alice@example.com" || r.detail != "+lists" {
		t.Fatalf("%+v", r)
	}
	if got := r.rewrite("bob@example.org"); got != "bob+lists@example.org" {
		t.Fatalf("rewrite %q", got)
	}
	if got := r.rewrite("alice@example.com"); got != "alice+lists@example.com" {
		t.Fatalf("no destuser %q", got)
	}
	if r := splitRecipient("+x@example.com", "+"); r.user != "+x@example.com" {
		t.Fatalf("leading delimiter %+v", r)
	}
	if r := splitRecipient("a-b@example.com", "+-"); r.user != "a@example.com" || r.rewrite("c@d") != "c-b@d" {
		t.Fatalf("several delimiters %+v", r)
	}
	if r := splitRecipient("a+b@example.com", ""); r.user != "a+b@example.com" {
		t.Fatalf("no delimiter %+v", r)
	}
}

func FuzzParsePath(f *testing.F) {
	for _, s := range []string{"FROM:<a@b> SIZE=1", "TO:<@r:u@d>", "TO:<>", "FROM:<<>>", "to:<a@b> NOTIFY=NEVER ORCPT=rfc822;x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, _, err := parsePath(s, "TO:")
		if err == nil && (len(addr) > len(s) || strings.ContainsAny(addr, "<> ")) {
			t.Fatalf("%q gave address %q", s, addr)
		}
		r := splitRecipient(addr, "+")
		if got := r.rewrite(r.user); got != addr {
			t.Fatalf("rewrite to the same user changed %q into %q", addr, got)
		}
	})
}
