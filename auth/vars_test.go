// SPDX-License-Identifier: Apache-2.0

package auth

import (
	"net/netip"
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	req := &Request{
		User:    "Alice.Smith@Example.COM",
		Service: "imap",
		Remote:  netip.MustParseAddrPort("192.0.2.7:5555"),
		Local:   netip.MustParseAddrPort("127.0.0.1:143"),
		Mech:    "PLAIN",
	}
	tests := []struct{ tmpl, want string }{
		{"%u", "Alice.Smith@Example.COM"},
		{"%Lu", "alice.smith@example.com"},
		{"%Ln", "alice.smith"},
		{"%Ld", "example.com"},
		{"%U{user}", "ALICE.SMITH@EXAMPLE.COM"},
		{"%L{username}", "alice.smith"},
		{"%s:%r:%b:%l:%a:%m", "imap:192.0.2.7:5555:127.0.0.1:143:PLAIN"},
		{"%2.3n", "ice"},
		{"%1n", "A"},
		{"%-3d", "COM"},
		{"100%%", "100%"},
		{"plain", "plain"},
		{"%{service}/%{rip}", "imap/192.0.2.7"},
	}
	for _, tt := range tests {
		got, err := Expand(tt.tmpl, req.Vars(), nil)
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tt.tmpl, got, err, tt.want)
		}
	}
}

func TestExpandEscapesValuesOnly(t *testing.T) {
	req := &Request{User: "a*b"}
	got, err := Expand("(uid=%u)", req.Vars(), func(s string) string { return strings.ReplaceAll(s, "*", `\2a`) })
	if err != nil || got != `(uid=a\2ab)` {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestExpandErrors(t *testing.T) {
	req := &Request{User: "u"}
	for _, tmpl := range []string{"%", "%q", "%{nosuch}", "%{user", "%L"} {
		if _, err := Expand(tmpl, req.Vars(), nil); err == nil {
			t.Errorf("Expand(%q): no error", tmpl)
		}
	}
}

func TestFieldsHas(t *testing.T) {
	f := Fields{"proxy": "", "nologin": "y", "ssl": "no"}
	if !f.Has("proxy") || !f.Has("nologin") || f.Has("ssl") || f.Has("host") {
		t.Fatalf("Has gave wrong answers for %v", f)
	}
	if s := (Fields{"pass": "secret", "host": "h"}).String(); strings.Contains(s, "secret") {
		t.Fatalf("String leaked a password: %s", s)
	}
}

func TestKindOfUnclassifiedIsTemporary(t *testing.T) {
	if KindOf(errString("boom")) != KindTemporary {
		t.Fatal("an unclassified error must be temporary")
	}
	if KindOf(Internal("x", errString("y"))) != KindInternal {
		t.Fatal("Internal lost its kind")
	}
}

type errString string

func (e errString) Error() string { return string(e) }
