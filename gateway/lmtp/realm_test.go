// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"slices"
	"testing"

	"github.com/maildirector/maildirector/internal/gatewaytest"
)

// TestDefaultRealm: a recipient without "@" is looked up, routed and
// handed to the backend as the passdb chain names it (auth.default_realm,
// then auth.username_format), the name its IMAP logins get; its +detail
// stays. A recipient with a domain keeps its address.
func TestDefaultRealm(t *testing.T) {
	e := startLMTP(t, func(s *Server) {
		chain := gatewaytest.StaticChain(t, "proxy=y nopassword=y")
		chain.DefaultRealm = "example.org"
		s.Lookup = chain
	})
	c := e.dial(t)
	c.do("LHLO mta", "250 SIZE")
	c.do("MAIL FROM:<s@x>", "250 2.1.0 OK")
	c.do("RCPT TO:<User0042>", "250 2.1.5 OK")
	c.do("RCPT TO:<user0043+news>", "250 2.1.5 OK")
	c.do("RCPT TO:<user0044@example.org>", "250 2.1.5 OK")
	c.do("RCPT TO:<user0045+x@other.example>", "250 2.1.5 OK")
	c.do("QUIT", "221 2.0.0 Bye")
	want := []string{"RCPT TO:<user0042@example.org>", "RCPT TO:<user0043+news@example.org>",
		"RCPT TO:<user0044@example.org>", "RCPT TO:<user0045+x@other.example>"}
	var got []string
	for _, cmd := range e.a.commands() {
		if len(cmd) > 4 && cmd[:4] == "RCPT" {
			got = append(got, cmd)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the backend got %q, want %q", got, want)
	}
}
