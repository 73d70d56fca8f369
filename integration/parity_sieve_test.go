// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sieveLiteralEnd matches a ManageSieve line that ends in a literal's size.
var sieveLiteralEnd = regexp.MustCompile(`\{(\d+)\+?\}$`)

// sieveLine reads one reply line, a literal it ends with included (its
// bytes and the rest of the line joined with "⏎").
func (c *parityConn) sieveLine() (string, bool) {
	l, ok := c.line()
	if !ok {
		return l, ok
	}
	m := sieveLiteralEnd.FindStringSubmatch(l)
	if m == nil {
		return l, true
	}
	n, _ := strconv.Atoi(m[1])
	if n > 1<<20 {
		return l, true
	}
	buf := make([]byte, n)
	c.conn.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return l + "<literal cut short>", false
	}
	rest, ok := c.line()
	return l + "⏎" + strings.ReplaceAll(string(buf), "\r\n", "⏎") + "⏎" + rest, ok
}

// sieveFinal reports whether a ManageSieve line is a command's final
// reply (RFC 5804 4: OK, NO or BYE).
func sieveFinal(l string) bool {
	word, _, _ := strings.Cut(l, " ")
	switch strings.ToUpper(word) {
	case "OK", "NO", "BYE":
		return true
	}
	return false
}

// readSieve reads the replies to one ManageSieve step: up to OK, NO or
// BYE (and the hang-up after BYE), or, within AUTHENTICATE, a server
// challenge (a string or literal line).
func readSieve(c *parityConn, sent string, _ step) []string {
	name, _, _ := strings.Cut(sent, " ")
	sasl := c.more || strings.EqualFold(name, "AUTHENTICATE")
	c.more = false
	var out []string
	for {
		l, ok := c.sieveLine()
		out = append(out, l)
		switch {
		case !ok:
			return out
		case strings.HasPrefix(strings.ToUpper(l), "BYE"):
			return append(out, c.rest()...)
		case sieveFinal(l):
			return out
		case sasl && (strings.HasPrefix(l, `"`) || strings.HasPrefix(l, "{")):
			c.more = true
			return out
		}
	}
}

var sieveParity = &protocol{
	name: "sieve",
	read: readSieve,
	// RFC 5804 2.2: after STARTTLS the server sends its capabilities
	// again, unasked.
	afterTLS: func(c *parityConn) []string { return readSieve(c, "", step{}) },
	normalise: []rewrite{
		// Deliberate: the greeting and IMPLEMENTATION name the server
		// (Dovecot's login_greeting, Pigeonhole's managesieve
		// implementation string).
		{regexp.MustCompile(`^OK "(Dovecot \(Debian\)|maildirector) ready\."$`), `OK "<greeting>"`},
		{regexp.MustCompile(`^"IMPLEMENTATION" "(Dovecot \(Debian\) Pigeonhole|maildirector)"$`), `"IMPLEMENTATION" "<server>"`},
	},
}

// sieveTLS starts a ManageSieve session with STARTTLS, then takes the
// steps.
func sieveTLS(more ...step) []step {
	return append([]step{{}, {send: "STARTTLS", starttls: true}}, more...)
}

// sieveString is s as a ManageSieve quoted string.
func sieveString(s string) string { return fmt.Sprintf("%q", s) }

// encryptNeeded: managesieve-login refuses a plaintext mechanism on an
// insecure connection with a bare NO (ENCRYPT-NEEDED only for
// ssl = required).
var encryptNeeded = &difference{
	why:  "deliberate: the gateway answers ENCRYPT-NEEDED (RFC 5804 1.3: the client may retry after STARTTLS), as README's table says; managesieve-login: NO \"Plaintext authentication disabled.\"",
	ours: []string{`NO (ENCRYPT-NEEDED) "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."`},
}

func sieveScripts() []script {
	ir := plainIR(parityUser, parityPass)
	return []script{
		{"greeting", []step{{}}},
		{"CAPABILITY before and after STARTTLS", []step{{}, {send: "CAPABILITY"}, {send: "STARTTLS", starttls: true}, {send: "CAPABILITY"}, {send: "STARTTLS"}, {send: "LOGOUT"}}},
		{"lower-case commands", []step{{}, {send: "capability"}, {send: "noop"}, {send: "logout"}}},
		{"CAPABILITY with an argument", []step{{}, {send: "CAPABILITY x"}, {send: "NOOP"}}},
		{"STARTTLS with an argument", []step{{}, {send: "STARTTLS x", starttls: true}, {send: "NOOP"}}},
		{"NOOP", []step{{}, {send: "NOOP"}, {send: `NOOP "tag"`}, {send: "NOOP {3+}\r\ntag"}}},
		{"NOOP with a bad argument", []step{{}, {send: "NOOP tag"}, {send: `NOOP "a" "b"`}, {send: "NOOP"}}},
		{"unknown command", []step{{}, {send: "FOO"}, {send: "FOO bar"}, {send: "NOOP"}}},
		{"commands after login, before it", []step{{}, {send: "LISTSCRIPTS"}, {send: `HAVESPACE "x" 1`}, {send: "NOOP"}}},
		{"too many invalid commands", []step{{}, {send: "FOO"}, {send: "FOO"}, {send: "FOO"}, {send: "NOOP"}}},
		{"empty line", []step{{}, {blank: true}, {send: "NOOP"}}},
		{"unterminated string", []step{{}, {send: `NOOP "tag`}, {send: "NOOP"}}},
		{"strings without a space between", []step{{}, {send: `NOOP "a""b"`}, {send: "NOOP"}}},
		{"two spaces", []step{{}, {send: `NOOP  "a"`}, {send: "NOOP"}}},
		{"a trailing space", []step{{}, {send: `NOOP "a" `}, {send: "NOOP"}}},
		{"a bad escape", []step{{}, {send: `NOOP "a\b"`}, {send: "NOOP"}}},
		{"a bad literal size", []step{{}, {send: "NOOP {x}"}, {send: "NOOP"}}},
		{"text after a literal size", []step{{}, {send: "NOOP {3}x"}, {send: "NOOP"}}},
		{"an over-long literal", []step{{}, {send: "NOOP {100000+}"}, {send: "NOOP"}}},
		{"XCLIENT from an untrusted client", []step{{}, {send: "XCLIENT ADDR=192.0.2.1"}, {send: "NOOP"}}},
		{"LOGOUT", []step{{}, {send: "LOGOUT"}}},
		{"LOGOUT with an argument", []step{{}, {send: "LOGOUT x"}, {send: "NOOP"}}},

		{"AUTHENTICATE before STARTTLS", []step{{}, {send: `AUTHENTICATE "PLAIN" ` + sieveString(ir), differ: encryptNeeded}, {send: `AUTHENTICATE "PLAIN"`, differ: encryptNeeded}, {send: "NOOP"}}},
		{"AUTHENTICATE PLAIN with a string", sieveTLS(step{send: `AUTHENTICATE "PLAIN" ` + sieveString(ir)}, step{send: "LOGOUT"})},
		{"AUTHENTICATE PLAIN with a literal", sieveTLS(step{send: fmt.Sprintf(`AUTHENTICATE "PLAIN" {%d+}`+"\r\n%s", len(ir), ir)}, step{send: "LOGOUT"})},
		{"AUTHENTICATE PLAIN with a synchronising literal", sieveTLS(step{send: fmt.Sprintf(`AUTHENTICATE "PLAIN" {%d}`, len(ir)), silent: true}, step{send: ir}, step{send: "LOGOUT"})},
		{"AUTHENTICATE PLAIN with continuation", sieveTLS(step{send: `AUTHENTICATE "PLAIN"`}, step{send: sieveString(ir)}, step{send: "LOGOUT"})},
		{"AUTHENTICATE PLAIN with a literal continuation", sieveTLS(step{send: `AUTHENTICATE "PLAIN"`}, step{send: fmt.Sprintf("{%d+}\r\n%s", len(ir), ir)}, step{send: "LOGOUT"})},
		{"AUTHENTICATE PLAIN empty", sieveTLS(step{send: `AUTHENTICATE "PLAIN" ""`}, step{send: "NOOP"})},
		{"AUTHENTICATE PLAIN wrong password", sieveTLS(step{send: `AUTHENTICATE "PLAIN" ` + sieveString(plainIR(parityUser, "wrong"))}, step{send: "NOOP"})},
		{"AUTHENTICATE cancelled", sieveTLS(step{send: `AUTHENTICATE "PLAIN"`}, step{send: `"*"`}, step{send: "NOOP"})},
		{"AUTHENTICATE invalid base64", sieveTLS(step{send: `AUTHENTICATE "PLAIN" "!!!"`}, step{send: "NOOP"})},
		{"AUTHENTICATE invalid base64 in a response", sieveTLS(step{send: `AUTHENTICATE "PLAIN"`}, step{send: `"!!!"`}, step{send: "NOOP"})},
		{"AUTHENTICATE empty response line", sieveTLS(step{send: `AUTHENTICATE "PLAIN"`}, step{blank: true}, step{send: "NOOP"})},
		{"AUTHENTICATE atom as response", sieveTLS(step{send: `AUTHENTICATE "PLAIN"`}, step{send: "abc"}, step{send: "NOOP"})},
		{"AUTHENTICATE empty response", sieveTLS(step{send: `AUTHENTICATE "PLAIN"`}, step{send: `""`}, step{send: "NOOP"})},
		{"AUTHENTICATE initial response as an atom", sieveTLS(step{send: `AUTHENTICATE "PLAIN" ` + ir}, step{send: "NOOP"})},
		{"AUTHENTICATE malformed PLAIN", sieveTLS(step{send: `AUTHENTICATE "PLAIN" ` + sieveString(b64s("no nul"))}, step{send: "NOOP"})},
		{"AUTHENTICATE unsupported mechanism", sieveTLS(step{send: `AUTHENTICATE "FOO"`}, step{send: `AUTHENTICATE "CRAM-MD5"`}, step{send: "NOOP"})},
		{"AUTHENTICATE with an atom", sieveTLS(step{send: "AUTHENTICATE PLAIN " + ir}, step{send: "NOOP"})},
		{"AUTHENTICATE without arguments", sieveTLS(step{send: "AUTHENTICATE"}, step{send: "NOOP"})},
		{"AUTHENTICATE with too many arguments", sieveTLS(step{send: `AUTHENTICATE "PLAIN" "a" "b"`}, step{send: "NOOP"})},
		{"AUTHENTICATE lower-case mechanism", sieveTLS(step{send: `authenticate "plain" ` + sieveString(ir)}, step{send: "LOGOUT"})},
		{"AUTHENTICATE LOGIN", sieveTLS(step{send: `AUTHENTICATE "LOGIN"`}, step{send: sieveString(b64s(parityUser))}, step{send: sieveString(b64s(parityPass))}, step{send: "LOGOUT"})},
		{"over-long line", []step{{}, {send: `NOOP "` + strings.Repeat("x", 70000) + `"`, differ: forLead("gateway/farewell.go (ErrLineTooLong, issue 14 §1): managesieve-login's words when a line fills its input buffer",
			`BYE "Too long command line."`, "<closed>")}}},
		{"too many failed logins", sieveTLS(
			step{send: `AUTHENTICATE "PLAIN" ` + sieveString(plainIR("x@example.com", "wrong"))},
			step{send: `AUTHENTICATE "PLAIN" ` + sieveString(plainIR("x@example.com", "wrong"))},
			step{send: `AUTHENTICATE "PLAIN" ` + sieveString(plainIR("x@example.com", "wrong"))},
			step{send: `AUTHENTICATE "PLAIN" ` + sieveString(plainIR("x@example.com", "wrong")), differ: &difference{
				why:  "deliberate: the gateway hangs up after limits.max_auth_failures (3) failed logins; Dovecot 2.3's login processes only slow them down (auth penalty)",
				ours: []string{`BYE "Too many authentication failures."`, "<closed>"},
			}})},
		{"session after login", sieveTLS(step{send: `AUTHENTICATE "PLAIN" ` + sieveString(ir)}, step{send: "LISTSCRIPTS"}, step{send: "NOOP"}, step{send: "LOGOUT"})},
	}
}

// TestParitySieve compares the gateway's ManageSieve pre-login dialogue
// with Dovecot 2.3's managesieve-login (Pigeonhole 0.5), line by line.
func TestParitySieve(t *testing.T) {
	pe := startParity(t, 3)
	pe.compare(t, sieveParity, sieveScripts(), 3)
}
