// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

// FuzzParseFields reads default_fields / override_fields. What it takes
// is a set of non-empty keys without spaces whose templates expand for
// any request (they were checked against an empty one), and parsing the
// fields written back as "k=v" gives the same set.
func FuzzParseFields(f *testing.F) {
	for _, s := range []string{
		"proxy=y nopassword=y",
		"host=127.0.0.11 port=10143 destuser=%Lu",
		"userdb_home=/srv/%d/%n userdb_quota_rule=*:storage=1G",
		"nologin reason=Migrating\\ to\\ the\\ new\\ cluster",
		"=x", "a==b", "k=%{nosuch}", "k=%", "k=%{ldap:mailHost:default}",
		"master=%{user}  pass=yes\tssl=any-cert starttls=yes",
	} {
		f.Add(s, "alice@example.com")
	}
	f.Fuzz(func(t *testing.T, s, user string) {
		fields, err := ParseFields(s)
		if err != nil {
			return
		}
		var back []string
		for k, v := range fields {
			if k == "" || strings.ContainsAny(k, " \t\r\n=") || strings.ContainsAny(v, " \t\r\n") {
				t.Fatalf("%q gave field %q=%q", s, k, v)
			}
			back = append(back, k+"="+v)
		}
		again, err := ParseFields(strings.Join(back, " "))
		if err != nil || len(again) != len(fields) {
			t.Fatalf("%q gave %v, written back: %v, %v", s, fields, again, err)
		}
		for k, v := range fields {
			if again[k] != v {
				t.Fatalf("%q: field %s is %q, then %q", s, k, v, again[k])
			}
		}
		req := &auth.Request{User: user, Service: "imap", Remote: netip.MustParseAddrPort("192.0.2.7:5555")}
		if err := applyFields(auth.Fields{}, fields, req, true); err != nil {
			t.Fatalf("%q: parsed, then failed to expand for %q: %v", s, user, err)
		}
	})
}

// FuzzUsernameFilter compares username_filter matching with a reference
// written as a dynamic program. wildcardMatch keeps one backtrack point,
// so long names and many stars are checked as fast as short ones.
func FuzzUsernameFilter(f *testing.F) {
	for _, s := range []struct{ filter, user string }{
		{"*@example.org", "alice@example.org"},
		{"*@example.org !root@* !admin?@*", "admin1@example.org"},
		{"!*@spam.example", "bob@example.org"},
		{"a?c*", "abc"},
		{"**?", ""},
		{"*a*a*b", "aaaaaaaaaaaaaaaa"},
		{"*a*a*a*a*a*a*b", strings.Repeat("a", 400)}, // seconds with a recursive matcher
		{"!", ""},
	} {
		f.Add(s.filter, s.user)
	}
	f.Fuzz(func(t *testing.T, filter, user string) {
		if len(user) > 512 || len(filter) > 256 {
			return
		}
		patterns := strings.Fields(filter)
		negMatched, hasPositive, posMatched := false, false, false
		for _, p := range patterns {
			if neg, ok := strings.CutPrefix(p, "!"); ok {
				negMatched = negMatched || refMatch(neg, user)
				continue
			}
			hasPositive = true
			posMatched = posMatched || refMatch(p, user)
		}
		want := !negMatched && (!hasPositive || posMatched)
		if got := usernameMatches(strings.Fields(filter), user); got != want {
			t.Fatalf("filter %q, user %q: %v, want %v", filter, user, got, want)
		}
	})
}

// refMatch is the textbook wildcard match: m[i][j] says whether
// pattern[:i] matches s[:j].
func refMatch(pattern, s string) bool {
	m := make([][]bool, len(pattern)+1)
	for i := range m {
		m[i] = make([]bool, len(s)+1)
	}
	m[0][0] = true
	for i := 1; i <= len(pattern); i++ {
		for j := 0; j <= len(s); j++ {
			switch pattern[i-1] {
			case '*':
				m[i][j] = m[i-1][j] || (j > 0 && m[i][j-1])
			case '?':
				m[i][j] = j > 0 && m[i-1][j-1]
			default:
				m[i][j] = j > 0 && m[i-1][j-1] && pattern[i-1] == s[j-1]
			}
		}
	}
	return m[len(pattern)][len(s)]
}
