// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"strings"
	"testing"

	"github.com/maildirector/maildirector/internal/gatewaytest"
)

// Regression tests for bugs found by the transcript suite.

// A backend that offers ID but not LITERAL+ answers the pipelined ID
// before the "+" of a synchronizing literal; the login must still work.
func TestSyncLiteralAfterIDWithoutLiteralPlus(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.backend.greeting = "* OK [CAPABILITY IMAP4rev1 ID AUTH=PLAIN] fake ready"
	})
	c := e.connect()
	c.Do("a LOGIN bob {7+}")
	c.Write("pässwd\r\n")
	c.Expect("a OK...")
	e.backend.expectReceived(t, "~^I ID ", "L LOGIN \"bob\" {7}\r\npässwd")
}

// One command cannot pile up literals beyond the command bound.
func TestCommandSizeIsBounded(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	var b strings.Builder
	b.WriteString("a NOOP")
	chunk := strings.Repeat("x", 8000)
	for i := 0; i < 10; i++ {
		b.WriteString(" {8000+}\r\n" + chunk)
	}
	c.Write(b.String())
	c.Expect("* BYE Literal too large.")
	c.ExpectClosed()
}

// NUL on a continuation line (after a literal) is garbage too.
func TestNULAfterLiteral(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Write("a LOGIN {3+}\r\nbob \"p\x00w\"\r\n")
	c.Expect("* BYE Garbage received.")
	c.ExpectClosed()
	if n := e.backend.connections(); n != 0 {
		t.Fatalf("the backend was contacted %d times", n)
	}
}

// "*" and "%" are not tags: "* NOOP" must not get an untagged-looking OK.
func TestWildcardTags(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("* NOOP", "* BAD Error in IMAP command received by server.")
	c.Do("a% NOOP", "* BAD Error in IMAP command received by server.")
}

// Without master passdbs a SASL authorization identity is refused, as in
// Dovecot, and no backend hears of it.
func TestAuthzIDNeedsMasterPassdb(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		ch := gatewaytest.StaticChain(s.backend.t, "proxy=y nopassword=y")
		ch.Masters = nil
		s.pipeline.Passdb = ch
	})
	c := e.connect()
	c.Do("a AUTHENTICATE PLAIN "+b64("bob\x00admin\x00secret"), "a "+authFailed)
	if n := e.backend.connections(); n != 0 {
		t.Fatalf("backend contacted %d times", n)
	}
}
