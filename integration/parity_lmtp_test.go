// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// readLMTP reads the replies to one LMTP step: s.replies SMTP replies (1
// unless set; after the final dot of DATA one per recipient), each up to
// the line whose fourth character is a space.
func readLMTP(c *parityConn, _ string, s step) []string {
	n := s.replies
	if n == 0 {
		n = 1
	}
	var out []string
	for ; n > 0; n-- {
		for {
			l, ok := c.line()
			out = append(out, l)
			if !ok {
				return out
			}
			if len(l) < 4 || l[3] == ' ' {
				break
			}
		}
	}
	return out
}

// lmtpParity is built per run: Dovecot names the machine in its greeting
// and LHLO reply, the gateway its lmtp.hostname.
func lmtpParity(t *testing.T) *protocol {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return &protocol{
		name: "lmtp",
		read: readLMTP,
		normalise: []rewrite{
			{regexp.MustCompile(`\b(` + regexp.QuoteMeta(host) + `|parity\.test)\b`), "<host>"},
			// Deliberate: the greeting names the server.
			{regexp.MustCompile(`^220 <host> (Dovecot \(Debian\)|maildirector LMTP) ready\.?$`), "220 <host> <greeting>"},
			// The delivering mail process's session id.
			{regexp.MustCompile(`^(250 2\.0\.0 <[^>]*>) \S+ Saved$`), "$1 <session> Saved"},
		},
	}
}

// lhloDiffers: the gateway announces what it offers, not what Dovecot's
// lmtp does.
func lhloDiffers(tls bool) *difference {
	ours := []string{"250-<host>", "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-PIPELINING", "250-SMTPUTF8", "250-SIZE", "250 STARTTLS"}
	if tls {
		ours = []string{"250-<host>", "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-PIPELINING", "250-SMTPUTF8", "250 SIZE"}
	}
	return &difference{
		why: "deliberate: the gateway takes SIZE and SMTPUTF8 and passes them on to backends that announce them (README, LMTP), " +
			"and does not offer CHUNKING (no BDAT); Dovecot 2.3's lmtp offers CHUNKING and neither of the others",
		ours: ours,
	}
}

// lhloStep is LHLO with its deliberate difference.
func lhloStep(tls bool) step { return step{send: "LHLO client.example", differ: lhloDiffers(tls)} }

// lmtpTLS starts an LMTP session with LHLO and STARTTLS.
func lmtpTLS(more ...step) []step {
	return append([]step{{}, lhloStep(false), {send: "STARTTLS", starttls: true}, lhloStep(true)}, more...)
}

// lhlo starts an LMTP session with LHLO.
func lhlo(more ...step) []step {
	return append([]step{{}, lhloStep(false)}, more...)
}

// lhloFirst: the gateway wants LHLO before a transaction.
var lhloFirst = &difference{
	why:  "deliberate: the gateway wants LHLO first (RFC 2033 4.1), again after STARTTLS and XCLIENT (gateway/lmtp TestXCLIENTFromTrusted pins it); Dovecot's lmtp takes MAIL without it",
	ours: []string{"503 5.5.1 LHLO first"},
}

// announced: parameters the gateway announces in LHLO and takes.
var announced = &difference{
	why:  "deliberate: the gateway announces SIZE and SMTPUTF8 (see LHLO) and so takes them; Dovecot's lmtp announces neither",
	ours: []string{"250 2.1.0 OK"},
}

const parityMessage = "From: a@example.org\r\nTo: parity@example.com\r\nSubject: parity\r\n\r\nhello\r\n."

func lmtpScripts() []script {
	rcpt := "RCPT TO:<" + parityUser + ">"
	return []script{
		{"greeting", []step{{}}},
		{"LHLO", lhlo()},
		{"LHLO twice", lhlo(step{send: "LHLO other.example", differ: lhloDiffers(false)})},
		{"LHLO without a domain", []step{{}, {send: "LHLO"}, lhloStep(false)}},
		{"LHLO with a bad domain", []step{{}, {send: "LHLO -bad-", differ: lhloDiffers(false)}, lhloStep(false)}},
		{"EHLO and HELO", []step{{}, {send: "EHLO client.example"}, {send: "HELO client.example"}, lhloStep(false)}},
		{"STARTTLS", lmtpTLS(step{send: "STARTTLS"})},
		{"STARTTLS before LHLO", []step{{}, {send: "STARTTLS", starttls: true}, lhloStep(true)}},
		{"MAIL before LHLO", []step{{}, {send: "MAIL FROM:<a@example.org>", differ: lhloFirst}, lhloStep(false)}},
		{"MAIL FROM null sender", lhlo(step{send: "MAIL FROM:<>"}, step{send: "RSET"})},
		{"MAIL FROM with BODY", lhlo(step{send: "MAIL FROM:<a@example.org> BODY=8BITMIME"}, step{send: "RSET"})},
		{"MAIL FROM with SIZE", lhlo(step{send: "MAIL FROM:<a@example.org> SIZE=100", differ: announced}, step{send: "RSET"})},
		{"MAIL FROM with SMTPUTF8", lhlo(step{send: "MAIL FROM:<a@example.org> SMTPUTF8", differ: announced}, step{send: "RSET"})},
		{"MAIL FROM with an unknown parameter", lhlo(step{send: "MAIL FROM:<a@example.org> FOO=bar"}, step{send: "RSET"})},
		{"MAIL FROM with a bad BODY", lhlo(step{send: "MAIL FROM:<a@example.org> BODY=7BITS"}, step{send: "RSET"})},
		{"MAIL FROM without brackets", lhlo(step{send: "MAIL FROM:a@example.org"}, step{send: "RSET"})},
		{"MAIL FROM with a space", lhlo(step{send: "MAIL FROM: <a@example.org>", differ: &difference{
			why:  "deliberate: the gateway reads the path after spaces (gateway/lmtp TestParsePath pins it); Dovecot refuses them",
			ours: []string{"250 2.1.0 OK"},
		}}, step{send: "RSET"})},
		{"MAIL FROM unterminated", lhlo(step{send: "MAIL FROM:<a@example.org"}, step{send: "RSET"})},
		{"MAIL without FROM", lhlo(step{send: "MAIL"}, step{send: "MAIL <a@example.org>"}, step{send: "RSET"})},
		{"MAIL twice", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: "MAIL FROM:<b@example.org>"}, step{send: "RSET"})},
		{"RCPT without MAIL", lhlo(step{send: rcpt})},
		{"RCPT TO unknown user", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: "RCPT TO:<nobody@example.com>"}, step{send: "RSET"})},
		{"RCPT TO known user", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: rcpt}, step{send: "RSET"})},
		{"RCPT TO with a detail", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: "RCPT TO:<parity+box@example.com>"}, step{send: "RSET"})},
		{"RCPT TO null", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: "RCPT TO:<>"}, step{send: "RSET"})},
		{"RCPT TO bad syntax", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: "RCPT TO:parity@example.com"}, step{send: "RCPT parity@example.com"}, step{send: "RCPT TO:<parity@example.com"}, step{send: "RSET"})},
		{"RCPT TO with an unknown parameter", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: rcpt + " FOO=bar"}, step{send: "RSET"})},
		{"DATA without MAIL", lhlo(step{send: "DATA"}, step{send: "NOOP"})},
		{"DATA without RCPT", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: "DATA"}, step{send: "RSET"})},
		{"delivery", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: rcpt}, step{send: "RCPT TO:<nobody@example.com>"}, step{send: "DATA"},
			step{send: parityMessage}, step{send: "QUIT"})},
		{"delivery to two recipients", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: rcpt}, step{send: "RCPT TO:<parity+x@example.com>"}, step{send: "DATA"},
			step{send: parityMessage, replies: 2}, step{send: "QUIT"})},
		{"RSET", lhlo(step{send: "RSET"}, step{send: "RSET x"})},
		{"NOOP", lhlo(step{send: "NOOP"}, step{send: "NOOP x"})},
		{"VRFY", lhlo(step{send: "VRFY " + parityUser}, step{send: "VRFY"}, step{send: "VRFY nobody@example.com"},
			step{send: "VRFY parity"}, step{send: `VRFY "parity@example.com"`})},
		{"QUIT", lhlo(step{send: "QUIT"})},
		{"QUIT before LHLO", []step{{}, {send: "QUIT"}}},
		{"QUIT with an argument", lhlo(step{send: "QUIT x"}, step{send: "NOOP"})},
		{"unknown command", lhlo(step{send: "FOO"}, step{send: "FOO bar"}, step{send: "NOOP"})},
		{"HELP and others", lhlo(step{send: "HELP"}, step{send: "EXPN x"}, step{send: "TURN"})},
		{"BDAT", lhlo(step{send: "MAIL FROM:<a@example.org>"}, step{send: rcpt}, step{send: "BDAT 5 LAST", silent: true, differ: &difference{
			why:  "deliberate: the gateway offers no CHUNKING (see LHLO); Dovecot's lmtp waits for the chunk",
			ours: []string{"500 5.5.1 Unknown command"},
		}})},
		{"empty line", lhlo(step{blank: true}, step{send: "NOOP"})},
		{"lower-case commands", []step{{}, {send: "lhlo client.example", differ: lhloDiffers(false)}, {send: "mail from:<a@example.org>"}, {send: "rcpt to:<" + parityUser + ">"}, {send: "rset"}, {send: "quit"}}},
		{"too many invalid commands", lhlo(step{send: "FOO"}, step{send: "FOO"}, step{send: "FOO"}, step{send: "FOO"}, step{send: "FOO"},
			step{send: "FOO"}, step{send: "FOO"}, step{send: "FOO"}, step{send: "FOO"}, step{send: "FOO"}, step{send: "FOO"}, step{send: "FOO"})},
		{"over-long line", lhlo(step{send: "NOOP " + strings.Repeat("x", 70000)}, step{send: "NOOP", differ: forLead("gateway/lmtp/server.go Serve with gateway/conn.go ReadLine (issue 14 §1): after 500 5.5.2 Line too long the gateway hangs up; Dovecot's lmtp skips the line and goes on",
			"<write failed>")})},
	}
}

// TestParityLMTP compares the gateway's LMTP dialogue with Dovecot 2.3's
// lmtp, line by line.
func TestParityLMTP(t *testing.T) {
	pe := startParity(t, 10)
	pe.compare(t, lmtpParity(t), lmtpScripts(), 4)
}
