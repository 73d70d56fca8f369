// SPDX-License-Identifier: Apache-2.0

package auth

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzExpand expands templates over a request whose user the fuzzer
// chooses. What must hold whatever the template: the escape function
// reaches substituted values only, never the template's own text (the
// property LDAP filters and SQL queries rely on); a template without
// variables ("%%" doubled) comes back as written; the output is bounded
// by the template and the values; an error needs a "%".
func FuzzExpand(f *testing.F) {
	for _, s := range []struct{ tmpl, user string }{
		{"%u", "Alice.Smith@Example.COM"},
		{"(&(objectClass=inetOrgPerson)(uid=%n))", "a*b)(uid=*"},
		{"%Lu", "ÄLICE@EXAMPLE.COM"},
		{"%U{user}", "bob"},
		{"%2.3n", "alice@x"},
		{"%-3d", "alice@example.com"},
		{"%-30.40u", "short"},
		{"%1n%999999999999999999999n", "x"},
		{"%{service}/%{rip}:%{rport}/%{lip}:%{lport}/%{session}/%{secured}/%{mech}/%{pid}", "u"},
		{"%{ldap:mailHost:default}", "u"},
		{"%{user", "u"},
		{"%", "u"},
		{"100%%", "u"},
		{"%LUL%UL-1.u", "MiXeD@Case"},
		{"SELECT password FROM users WHERE userid = '%u' AND domain = '%d'", "o'brien@example.org"},
	} {
		f.Add(s.tmpl, s.user)
	}
	f.Fuzz(func(t *testing.T, tmpl, user string) {
		req := &Request{User: user, Service: "imap", Mech: "PLAIN", Session: "sess*1",
			Remote: netip.MustParseAddrPort("192.0.2.7:5555"), Local: netip.MustParseAddrPort("[::1]:143")}
		escape := func(v string) string { return strings.ReplaceAll(v, "*", `\2a`) }
		out, err := Expand(tmpl, req.Vars(), escape)
		if err != nil {
			if !strings.Contains(tmpl, "%") {
				t.Fatalf("Expand(%q) without a variable: %v", tmpl, err)
			}
		} else {
			if strings.Count(out, "*") > strings.Count(tmpl, "*") {
				t.Fatalf("Expand(%q) for user %q = %q: a value escaped the escape", tmpl, user, out)
			}
			// Each variable takes at least two bytes of the template and
			// gives at most the longest value, escaped (3 bytes a byte).
			longest := max(len(user), len("[::1]:143"), len("sess*1"), 20)
			if len(out) > len(tmpl)+len(tmpl)/2*3*longest {
				t.Fatalf("Expand(%q) gave %d bytes", tmpl, len(out))
			}
		}
		lit := strings.ReplaceAll(tmpl, "%", "%%")
		if back, err := Expand(lit, req.Vars(), escape); err != nil || back != tmpl {
			t.Fatalf("Expand(%q) = %q, %v; want the text back", lit, back, err)
		}
	})
}
