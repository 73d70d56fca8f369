// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"regexp"
	"strings"
	"testing"
)

// pop3MultiLine reports whether a POP3 command line, sent outside a SASL
// exchange, is answered with a multi-line reply after +OK.
func pop3MultiLine(sent string) bool {
	name, args, _ := strings.Cut(strings.TrimRight(sent, " "), " ")
	switch strings.ToUpper(name) {
	case "CAPA", "RETR", "TOP":
		return true
	case "AUTH", "LIST", "UIDL":
		return args == ""
	}
	return false
}

// readPOP3 reads the replies to one POP3 step: one status line (and the
// lines up to "." after +OK for multi-line answers), or a continuation
// request. A -ERR ends the replies when nothing follows it (pop3-login
// adds a second -ERR before hanging up on too many bad commands).
func readPOP3(c *parityConn, sent string, _ step) []string {
	greeting := !c.greeted
	c.greeted = true
	cont := c.more
	c.more = false
	var out []string
	for {
		l, ok := c.line()
		out = append(out, l)
		switch {
		case !ok, greeting:
			return out
		case l == "+" || strings.HasPrefix(l, "+ "):
			c.more = true
			return out
		case strings.HasPrefix(l, "-ERR"):
			if c.quiet() {
				return out
			}
		case strings.HasPrefix(l, "+OK"):
			if cont || !pop3MultiLine(sent) {
				return out
			}
			for {
				l, ok := c.line()
				out = append(out, l)
				if !ok || l == "." {
					return out
				}
			}
		}
	}
}

var pop3Parity = &protocol{
	name: "pop3",
	read: readPOP3,
	normalise: []rewrite{
		// Deliberate: the greeting names the server (Dovecot's
		// login_greeting).
		{regexp.MustCompile(`^\+OK (Dovecot \(Debian\)|maildirector) ready\.$`), "+OK <greeting>"},
	},
}

// pop3TLS starts a POP3 session with STLS, then takes the steps.
func pop3TLS(more ...step) []step {
	return append([]step{{}, {send: "STLS", starttls: true}}, more...)
}

// pop3Probe shows whether a session before STLS goes on: answered alike
// by both (plaintext refused), unlike CAPA (see capaBeforeTLS).
const pop3Probe = "USER probe@example.com"

// capaBeforeTLS: pop3-login always has a SASL line, empty where no
// mechanism may be used; the gateway leaves it out.
var capaBeforeTLS = forLead("gateway/pop3/server.go capa: pop3-login sends \"SASL\" even with no mechanism to offer; pinned by integration/pop3_test.go:479 (no SASL before STLS) and gateway/pop3/server_test.go TestNoMechanisms",
	"+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", ".")

// plaintextAUTH: pop3-login refuses a plaintext mechanism on an insecure
// connection in its SASL layer's words.
var plaintextAUTH = forLead("gateway/pop3/login.go plaintextDisallowed, used by AUTH: pop3-login says \"Plaintext authentication disabled.\" for AUTH (USER and PASS keep the long text); pinned by integration/pop3_test.go:482-487",
	"-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.")

// neverForgiven: pop3-login forgets invalid commands after any valid one.
func neverForgiven(ours ...string) *difference {
	return &difference{
		why:  "deliberate: the gateway counts every invalid command of a session towards limits.max_bad_commands (gateway/pop3 TestTooManyBadCommands pins it); pop3-login starts again from zero after any valid command",
		ours: ours,
	}
}

func pop3Scripts() []script {
	user, pass := "USER "+parityUser, "PASS "+parityPass
	probe := step{send: pop3Probe}
	return []script{
		{"greeting", []step{{}}},
		{"CAPA before and after STLS", []step{{}, {send: "CAPA", differ: capaBeforeTLS}, {send: "STLS", starttls: true}, {send: "CAPA"}, {send: "STLS"}, {send: "QUIT"}}},
		{"lower-case commands", []step{{}, {send: "stls", starttls: true}, {send: "capa"}, {send: "quit"}}},
		{"STLS with an argument", []step{{}, {send: "STLS x", starttls: true}, {send: "CAPA"}}},
		{"CAPA with an argument", pop3TLS(step{send: "CAPA x"})},
		{"commands of the transaction state", []step{{}, {send: "NOOP"}, {send: "STAT"}, probe}},
		{"RETR", []step{{}, {send: "RETR 1"}, {send: "LIST"}, probe}},
		{"unknown command", []step{{}, {send: "FOO"}, {send: "FOO bar baz"}, probe}},
		{"a command name over 8 characters", []step{{}, {send: "CAPABILITY"}, probe}},
		{"empty line", []step{{}, {blank: true}, probe}},
		{"too many unknown commands", []step{{}, {send: "FOO"}, {send: "FOO"}, {send: "FOO"}, probe}},
		{"a valid command resets the count", []step{{}, {send: "FOO"}, {send: "FOO"}, probe,
			{send: "FOO", differ: neverForgiven("-ERR Unknown command.", "-ERR Too many invalid bad commands.", "<closed>")}}},
		{"APOP", []step{{}, {send: "APOP " + parityUser + " " + strings.Repeat("0", 32)}, probe}},
		{"XCLIENT from an untrusted client", []step{{}, {send: "XCLIENT ADDR=192.0.2.1"}, probe}},
		{"AUTH listing", []step{{}, {send: "AUTH"}, {send: "STLS", starttls: true}, {send: "AUTH"}}},
		{"AUTH listing, odd forms", pop3TLS(step{send: "AUTH "}, step{send: "AUTH  PLAIN"})},

		{"USER and PASS before STLS", []step{{}, {send: user}, {send: pass}, probe}},
		{"PASS alone before STLS", []step{{}, {send: pass}, probe}},
		{"AUTH before STLS", []step{{}, {send: "AUTH PLAIN " + plainIR(parityUser, parityPass), differ: plaintextAUTH}, {send: "AUTH LOGIN", differ: plaintextAUTH}, probe}},
		{"USER and PASS", pop3TLS(step{send: user}, step{send: pass}, step{send: "QUIT"})},
		{"USER and PASS, lower case", pop3TLS(step{send: "user " + parityUser}, step{send: "pass " + parityPass}, step{send: "quit"})},
		{"USER twice", pop3TLS(step{send: "USER nobody@example.com"}, step{send: user}, step{send: pass}, step{send: "QUIT"})},
		{"USER without a name", pop3TLS(step{send: "USER"}, step{send: "PASS x"}, step{send: "CAPA"})},
		{"PASS without USER", pop3TLS(step{send: pass}, step{send: "CAPA"})},
		{"PASS wrong", pop3TLS(step{send: user}, step{send: "PASS wrong"}, step{send: "PASS " + parityPass}, step{send: "CAPA"})},
		{"PASS with spaces", pop3TLS(step{send: user}, step{send: "PASS " + parityPass + " x"}, step{send: "CAPA"})},
		{"unknown user", pop3TLS(step{send: "USER nobody@example.com"}, step{send: "PASS x"}, step{send: "CAPA"})},
		{"AUTH PLAIN with initial response", pop3TLS(step{send: "AUTH PLAIN " + plainIR(parityUser, parityPass)}, step{send: "QUIT"})},
		{"AUTH PLAIN with =", pop3TLS(step{send: "AUTH PLAIN ="}, step{send: "CAPA"})},
		{"AUTH PLAIN with continuation", pop3TLS(step{send: "AUTH PLAIN"}, step{send: plainIR(parityUser, parityPass)}, step{send: "QUIT"})},
		{"AUTH PLAIN with a trailing space", pop3TLS(step{send: "AUTH PLAIN "}, step{send: plainIR(parityUser, parityPass)}, step{send: "QUIT"})},
		{"AUTH PLAIN lower case", pop3TLS(step{send: "auth plain " + plainIR(parityUser, parityPass)}, step{send: "QUIT"})},
		{"AUTH PLAIN wrong password", pop3TLS(step{send: "AUTH PLAIN " + plainIR(parityUser, "wrong")}, step{send: "CAPA"})},
		{"AUTH cancelled", pop3TLS(step{send: "AUTH PLAIN"}, step{send: "*"}, step{send: "CAPA"})},
		{"AUTH invalid base64", pop3TLS(step{send: "AUTH PLAIN !!!"}, step{send: "AUTH PLAIN"}, step{send: "!!!"}, step{send: "CAPA"})},
		{"AUTH malformed PLAIN", pop3TLS(step{send: "AUTH PLAIN " + b64s("no nul")}, step{send: "CAPA"})},
		{"AUTH unsupported mechanism", pop3TLS(step{send: "AUTH FOO"}, step{send: "AUTH CRAM-MD5"}, step{send: "CAPA"})},
		{"AUTH LOGIN", pop3TLS(step{send: "AUTH LOGIN"}, step{send: b64s(parityUser)}, step{send: b64s(parityPass)}, step{send: "QUIT"})},
		{"AUTH with more after the initial response", pop3TLS(step{send: "AUTH PLAIN a b"}, step{send: "CAPA"})},
		{"QUIT", []step{{}, {send: "QUIT"}, probe}},
		{"over-long line", []step{{}, {send: "CAPA " + strings.Repeat("x", 70000), differ: forLead("gateway/farewell.go (ErrLineTooLong, issue 14 §1): pop3-login's words when a line fills its input buffer",
			"-ERR Too long command line.", "<closed>")}}},
		{"too many failed logins", pop3TLS(
			step{send: "USER x@example.com"}, step{send: "PASS wrong"}, step{send: "USER x@example.com"}, step{send: "PASS wrong"},
			step{send: "USER x@example.com"}, step{send: "PASS wrong", differ: &difference{
				why:  "deliberate: the gateway hangs up after limits.max_auth_failures (3) failed logins; Dovecot 2.3's login processes only slow them down (auth penalty)",
				ours: []string{"-ERR [AUTH] Authentication failed.", "-ERR Too many authentication failures.", "<closed>"},
			}})},
		{"session after login", pop3TLS(step{send: user}, step{send: pass}, step{send: "STAT"}, step{send: "NOOP"},
			step{send: "FOO"}, step{send: "QUIT"})},
	}
}

// TestParityPOP3 compares the gateway's POP3 pre-login dialogue with
// Dovecot 2.3's pop3-login, line by line.
func TestParityPOP3(t *testing.T) {
	pe := startParity(t, 3)
	pe.compare(t, pop3Parity, pop3Scripts(), 2)
}
