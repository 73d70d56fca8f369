// SPDX-License-Identifier: Apache-2.0

package ldap

import (
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/maildirector/maildirector/auth"
)

// FuzzEscape puts any user name into a filter and a DN the way lookups
// do, and reads them back with go-ldap's own parsers: the filter is the
// template's, with exactly the user's bytes as the uid value (no
// injected assertion, no wildcard), and the DN has the template's RDNs,
// the first one valued exactly the user name.
func FuzzEscape(f *testing.F) {
	for _, s := range []string{
		"alice", "*)(uid=*", "a*b", `back\slash`, "é, a#b\x00", "cn=admin,dc=example,dc=com", " lead", "trail ",
		"#hash", "a+b", "<>;\"=", "\xff\xfe", "(|(uid=*))", "\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, user string) {
		req := &auth.Request{User: user}
		filter, err := expandEscaped("(&(objectClass=posixAccount)(uid=%u))", req)
		if err != nil {
			t.Fatal(err)
		}
		packet, err := goldap.CompileFilter(filter)
		if err != nil {
			t.Fatalf("user %q: filter %q does not compile: %v", user, filter, err)
		}
		back, err := goldap.DecompileFilter(packet)
		if want := "(&(objectClass=posixAccount)(uid=" + goldap.EscapeFilter(user) + "))"; err != nil || back != want {
			t.Fatalf("user %q: filter %q reads as %q, %v; want %q", user, filter, back, err, want)
		}
		if user == "" {
			return
		}
		dn, err := expandEscaped("uid=%u,ou=people,dc=example,dc=com", req)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := goldap.ParseDN(dn)
		if err != nil {
			t.Fatalf("user %q: DN %q does not parse: %v", user, dn, err)
		}
		if len(parsed.RDNs) != 4 || len(parsed.RDNs[0].Attributes) != 1 || parsed.RDNs[0].Attributes[0].Type != "uid" ||
			parsed.RDNs[0].Attributes[0].Value != user {
			t.Fatalf("user %q: DN %q reads as %+v", user, dn, parsed.RDNs)
		}
	})
}

// FuzzParseAttrs reads pass_attrs / user_attrs lists: what it takes
// names each attribute to fetch once (case-insensitively), gives every
// item a field name, and turns any entry into fields without error.
func FuzzParseAttrs(f *testing.F) {
	for _, s := range []string{
		"uid=user, userPassword=password, !mailHost, =proxy=y, =host=%{ldap:mailHost:127.0.0.11}, " +
			"quota=userdb_quota_rule=*:bytes=%$, missing=nothere, =flag, mail, =master=%{ldap:masterName}",
		"homeDirectory=home,uidNumber=uid,gidNumber=gid", "uid=user,userPassword=password",
		"@sub=%{ldap:x}", "=host=%{ldap_ptr:x}", "a=", "=host=%q", "UID=user,uid=x", ",,, ,", "=x=%{ldap:}",
	} {
		f.Add(s, "alice")
	}
	f.Fuzz(func(t *testing.T, list, value string) {
		m, err := parseAttrs(list)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		attrs := map[string][]string{}
		for _, a := range m.fetch {
			if a == "" || seen[strings.ToLower(a)] {
				t.Fatalf("%q fetches %q", list, m.fetch)
			}
			seen[strings.ToLower(a)] = true
			attrs[a] = []string{value}
		}
		for _, it := range m.items {
			if it.field == "" {
				t.Fatalf("%q gave an item without a field: %+v", list, it)
			}
		}
		e := goldap.NewEntry("uid="+escape(value)+",dc=example,dc=com", attrs)
		if _, err := m.fields(e, &auth.Request{User: value}); err != nil {
			t.Fatalf("%q: fields of an entry: %v", list, err)
		}
	})
}
