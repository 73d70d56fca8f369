// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// readIMAP reads the replies to one IMAP step: up to the tagged reply of
// the command, a continuation request, or a BYE and the hang-up after it.
// An untagged BAD ends the replies when nothing follows it (a line whose
// tag could not be read).
func readIMAP(c *parityConn, sent string, _ step) []string {
	if !c.greeted {
		c.greeted = true
		l, _ := c.line()
		return []string{l}
	}
	if !c.more {
		c.tag, _, _ = strings.Cut(sent, " ")
	}
	c.more = false
	var out []string
	for {
		l, ok := c.line()
		out = append(out, l)
		switch {
		case !ok:
			return out
		case l == "+" || strings.HasPrefix(l, "+ "):
			c.more = true
			return out
		case strings.HasPrefix(l, c.tag+" "):
			return out
		case strings.HasPrefix(l, "* BAD ") && c.quiet():
			return out
		case strings.HasPrefix(l, "* BYE"):
			return append(out, c.rest()...)
		}
	}
}

var imapParity = &protocol{
	name: "imap",
	read: readIMAP,
	normalise: []rewrite{
		// Deliberate: the greeting and the ID reply name the server
		// (Dovecot's login_greeting and imap_id_send).
		{regexp.MustCompile(`\] (Dovecot \(Debian\)|maildirector) ready\.$`), "] <greeting>"},
		{regexp.MustCompile(`^\* ID \("name" "(Dovecot|maildirector)"\)$`), `* ID ("name" <server>)`},
		// The capabilities after login are the backend's, relayed.
		{regexp.MustCompile(`^(\S+) OK \[CAPABILITY [^\]]*\] Logged in$`), "$1 OK [CAPABILITY <post-login>] Logged in"},
		// The mail process's timing of LOGOUT.
		{regexp.MustCompile(`\(\d+\.\d+ \+ \d+\.\d+( \+ \d+\.\d+)? secs\)`), "(<secs>)"},
	},
}

func plainIR(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + pass))
}

func b64s(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// longID is an ID command of 200 fields (100 pairs), about 30 KiB.
func longID(tag string) string {
	var b strings.Builder
	b.WriteString(tag + " ID (")
	for i := 0; i < 100; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "\"key%03d\" \"%s\"", i, strings.Repeat("v", 290))
	}
	b.WriteString(")")
	return b.String()
}

// tlsFirst starts a session with STARTTLS, then takes the steps.
func tlsFirst(startTLS string, more ...step) []step {
	return append([]step{{}, {send: startTLS, starttls: true}}, more...)
}

// oneLine is a row of one command line (after STARTTLS when tls), then a
// NOOP to show whether the session goes on; differ marks the line.
func oneLine(line string, tls bool, differ *difference) script {
	steps := []step{{}}
	if tls {
		steps = tlsFirst("s STARTTLS")
	}
	steps = append(steps, step{send: line, differ: differ}, step{send: "z NOOP"})
	return script{name: line, steps: steps}
}

// For the lead: answers of gateway/imap/server.go, id.go and parse.go,
// files being changed for issue 14 when this table was written.
func forLead(where string, ours ...string) *difference {
	return &difference{why: "left for the lead: " + where, ours: ours, open: true}
}

func missingQuote(tag string) *difference {
	return forLead("gateway/imap/parse.go: imap-login sends its parser's words alone; pinned by gateway/imap/server_test.go TestBadSyntax",
		tag+` BAD Error in IMAP command: Missing '"'.`)
}

func imapScripts() []script {
	login := fmt.Sprintf("a LOGIN %s %s", parityUser, parityPass)
	generic := "Error in IMAP command received by server."
	return []script{
		{"greeting", []step{{}}},
		{"CAPABILITY before and after STARTTLS", []step{{}, {send: "a CAPABILITY"}, {send: "b STARTTLS", starttls: true}, {send: "c CAPABILITY"}, {send: "d STARTTLS"}, {send: "e LOGOUT"}}},
		{"lower-case commands", []step{{}, {send: "a capability"}, {send: "b noop"}, {send: "c logout"}}},
		{"NOOP", []step{{}, {send: "a NOOP"}, {send: "b NOOP extra"}}},
		{"unknown command", []step{{}, {send: "a FOO"}, {send: "b FOO bar baz"}, {send: "c SELECT INBOX"}}},
		{"arguments where none belong", []step{{}, {send: "a CAPABILITY x"}, {send: "c LOGOUT x"}}},
		{"STARTTLS with an argument", []step{{}, {send: "b STARTTLS x", starttls: true}}},

		// Malformed commands, one per connection: imap-login hangs up
		// after three invalid ones.
		{"empty line", []step{{}, {blank: true}, {send: "z NOOP"}}},
		oneLine(" NOOP", false, nil),
		oneLine("a+ NOOP", false, nil),
		oneLine("* NOOP", false, nil),
		oneLine("a% NOOP", false, nil),
		oneLine("a1", false, nil),
		oneLine("a1 (NOOP)", false, nil),
		oneLine("LOGIN "+parityUser+" "+parityPass, false, forLead("gateway/imap/server.go next (unknown command): imap-login answers a line whose tag is LOGIN otherwise, and does not count it as invalid",
			"LOGIN BAD "+generic)),
		oneLine("a1 ENABLE CONDSTORE", false, nil),
		oneLine("a1 LOGIN", false, nil),
		oneLine("a1 LOGIN bob", false, nil),
		oneLine("a1 LOGIN bob secret x", false, nil),
		oneLine("a1 LOGIN (bob) secret", false, nil),
		oneLine("a1 LOGIN NIL secret", true, nil),
		oneLine("a1 LOGIN bob  secret", true, forLead("gateway/imap/parse.go: imap-login's parser takes this LOGIN and tries it; pinned by gateway/imap/server_test.go TestBadSyntax (two spaces)",
			"a1 BAD Error in IMAP command: Invalid characters in atom.")),
		oneLine("a1 LOGIN bob secret ", true, forLead("gateway/imap/parse.go: imap-login's parser takes this LOGIN and tries it; pinned by gateway/imap/server_test.go TestBadSyntax (a trailing space)",
			"a1 BAD Error in IMAP command: Missing argument.")),
		oneLine(`a1 LOGIN "bob secret`, true, forLead("gateway/imap/parse.go: imap-login sends its parser's words alone; pinned by gateway/imap/server_test.go TestBadSyntax",
			`a1 BAD Error in IMAP command: Missing '"'.`)),
		oneLine(`a1 LOGIN "b\ob" secret`, true, forLead("gateway/imap/parse.go: imap-login's parser takes this LOGIN and tries it; pinned by gateway/imap/server_test.go TestBadSyntax (any escaped character)",
			"a1 BAD Error in IMAP command: Invalid escape in quoted string.")),
		oneLine(`a1 LOGIN "bob"secret`, true, forLead("gateway/imap/parse.go: imap-login's parser takes this LOGIN and tries it; pinned by gateway/imap/server_test.go TestBadSyntax (no space after a quoted string)",
			"a1 BAD Error in IMAP command: Missing space.")),
		{"a1 LOGIN {3}x", tlsFirst("s STARTTLS", step{send: "a1 LOGIN {3}x", differ: forLead("gateway/imap/parse.go: imap-login asks for the literal and refuses the line after it (Missing LF after literal size); pinned by gateway/imap/server_test.go TestBadSyntax",
			"a1 BAD Error in IMAP command: Broken literal.")}, step{send: "z NOOP", differ: forLead("(follows from the step before)", "z OK NOOP completed.")})},
		oneLine("a1 LOGIN {x}", true, forLead("gateway/imap/parse.go: imap-login's parser says \"Invalid literal size\"; pinned by gateway/imap/server_test.go TestBadSyntax",
			"a1 BAD Error in IMAP command: Broken literal size.")),
		oneLine("a1 LOGIN {-1}", true, forLead("gateway/imap/parse.go: imap-login's parser says \"Invalid literal size\"; pinned by gateway/imap/server_test.go TestBadSyntax",
			"a1 BAD Error in IMAP command: Broken literal size.")),
		oneLine("a1 ID ((((()))))", false, forLead("gateway/imap/idstream.go (issue 14 work): imap-login's parser refuses the nesting itself",
			"a1 BAD Invalid ID parameters")),
		oneLine("a1 ID (", false, forLead("gateway/imap/idstream.go (issue 14 work): imap-login's parser answers the unclosed list",
			"a1 BAD Invalid ID parameters")),
		oneLine("a1 ID", false, nil),
		oneLine("a1 ID foo", false, nil),
		oneLine(`a1 ID (("a") "b")`, false, nil),
		oneLine(`a1 ID ("a" ("b"))`, false, nil),
		oneLine(`a1 ID ("`+strings.Repeat("k", 31)+`" "v")`, false, nil),
		oneLine(`a1 ID ("k" "v" NIL "w")`, false, nil),
		oneLine(`a1 ID ("name")`, false, nil),
		oneLine(`a1 ID ("a" "b") x`, false, nil),
		oneLine(`a1 ID (name "v")`, false, nil),
		oneLine(`a1 ID ("k" v)`, false, nil),
		oneLine("a1 AUTHENTICATE", true, nil),
		oneLine(`a1 AUTHENTICATE "PLAIN"`, true, nil),
		oneLine("a1 AUTHENTICATE PLAIN a b", true, nil),
		oneLine("a1 AUTHENTICATE PLAIN (x)", true, nil),

		// Logins.
		{"LOGIN before STARTTLS", []step{{},
			{send: login},
			{send: "b AUTHENTICATE PLAIN " + plainIR(parityUser, parityPass)},
			{send: "c AUTHENTICATE PLAIN"},
			{send: "d AUTHENTICATE LOGIN"}}},
		{"LOGIN atom", tlsFirst("s STARTTLS", step{send: login}, step{send: "b LOGOUT"})},
		{"LOGIN quoted", tlsFirst("s STARTTLS", step{send: fmt.Sprintf("a LOGIN %q %q", parityUser, parityPass)}, step{send: "b LOGOUT"})},
		{"LOGIN literal", tlsFirst("s STARTTLS",
			step{send: fmt.Sprintf("a LOGIN {%d}", len(parityUser))}, step{send: fmt.Sprintf("%s {%d}", parityUser, len(parityPass))}, step{send: parityPass}, step{send: "b LOGOUT"})},
		{"LOGIN non-synchronising literal", tlsFirst("s STARTTLS",
			step{send: fmt.Sprintf("a LOGIN {%d+}\r\n%s {%d+}\r\n%s", len(parityUser), parityUser, len(parityPass), parityPass)}, step{send: "b LOGOUT"})},
		{"LOGIN over-long literal", tlsFirst("s STARTTLS",
			step{send: "a LOGIN {100000}", differ: forLead("gateway/imap/parse.go literal answers BAD and goes on; imap-login hangs up with its parser's words (IMAP_PARSE_ERROR_LITERAL_TOO_BIG); pinned by gateway/imap/failures_test.go:182",
				"a BAD Error in IMAP command: Literal too large (max 8192).")},
			step{send: "b NOOP", differ: forLead("(follows from the step before)", "b OK NOOP completed.")})},
		{"LOGIN over-long non-synchronising literal", tlsFirst("s STARTTLS",
			step{send: "a LOGIN {100000+}", differ: forLead("gateway/farewell.go (ErrLiteralTooBig, shared by the protocols): imap-login's words are its parser's; pinned by gateway/imap/failures_test.go:191, regress_test.go:40",
				"* BYE Literal too large.", "<closed>")}, step{send: "b NOOP"})},
		{"LOGIN wrong password", tlsFirst("s STARTTLS", step{send: "a LOGIN " + parityUser + " wrong"}, step{send: "b LOGIN nobody@example.com wrong"}, step{send: "c NOOP"})},
		{"AUTHENTICATE PLAIN with SASL-IR", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE PLAIN " + plainIR(parityUser, parityPass)}, step{send: "b LOGOUT"})},
		{"AUTHENTICATE PLAIN with =", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE PLAIN ="}, step{send: "b NOOP"})},
		{"AUTHENTICATE PLAIN with continuation", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE PLAIN"}, step{send: plainIR(parityUser, parityPass)}, step{send: "b LOGOUT"})},
		{"AUTHENTICATE PLAIN with empty continuation", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE PLAIN"}, step{blank: true}, step{send: "b NOOP"})},
		{"AUTHENTICATE PLAIN wrong password", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE PLAIN " + plainIR(parityUser, "wrong")}, step{send: "b NOOP"})},
		{"AUTHENTICATE cancelled", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE PLAIN"}, step{send: "*"}, step{send: "b NOOP"})},
		{"AUTHENTICATE LOGIN", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE LOGIN"}, step{send: b64s(parityUser)}, step{send: b64s(parityPass)}, step{send: "b LOGOUT"})},
		{"AUTHENTICATE LOGIN cancelled", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE LOGIN"}, step{send: b64s(parityUser)}, step{send: "*"}, step{send: "b NOOP"})},
		{"AUTHENTICATE invalid base64", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE PLAIN !!!"}, step{send: "b AUTHENTICATE PLAIN"}, step{send: "!!!"}, step{send: "c NOOP"})},
		{"AUTHENTICATE malformed PLAIN", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE PLAIN " + b64s("no nul")}, step{send: "c NOOP"})},
		{"AUTHENTICATE unsupported mechanism", tlsFirst("s STARTTLS", step{send: "a AUTHENTICATE FOO"}, step{send: "b AUTHENTICATE CRAM-MD5"}, step{send: "c NOOP"})},
		{"AUTHENTICATE PLAIN with a quoted initial response", tlsFirst("s STARTTLS", step{send: `a AUTHENTICATE PLAIN "` + plainIR(parityUser, parityPass) + `"`, differ: &difference{
			why:  "deliberate: the gateway reads AUTHENTICATE's arguments as IMAP strings, so a quoted initial response works (gateway/imap authenticate_test.go pins it); imap-login takes the rest of the line as base64",
			ours: []string{"a OK [CAPABILITY <post-login>] Logged in"},
		}})},
		{"AUTHENTICATE lower-case mechanism", tlsFirst("s STARTTLS", step{send: "a authenticate plain " + plainIR(parityUser, parityPass)}, step{send: "b LOGOUT"})},

		{"ID", []step{{}, {send: `a ID ("name" "parity" "version" "1.0")`}, {send: "b ID NIL"}, {send: "c ID ()"}}},
		{"ID long", []step{{}, {send: longID("a")}, {send: "b NOOP"}}},
		{"LOGOUT", []step{{}, {send: "a LOGOUT"}}},
		{"over-long line", []step{{}, {send: "a NOOP " + strings.Repeat("x", 70000), differ: forLead("gateway/farewell.go (ErrLineTooLong, issue 14 §1): imap-login says so when one element fills its input buffer",
			"* BYE Too long command line.", "<closed>")}}},
		{"over-long line of short words", []step{{}, {send: "a NOOP" + strings.Repeat(" x", 5000), differ: forLead("gateway/farewell.go (ErrLineTooLong, issue 14 §1): imap-login's parser reads a line of short words as it comes, answers BAD and goes on",
			"* BYE Too long command line.", "<closed>")}}},
		{"too many invalid commands", []step{{}, {send: "a FOO"}, {send: "b FOO"}, {send: "c FOO"}, {send: "d FOO"}}},
		{"syntax errors are invalid commands", []step{{},
			{send: `a LOGIN "x`, differ: missingQuote("a")},
			{send: `b LOGIN "x`, differ: missingQuote("b")},
			{send: `c LOGIN "x`, differ: &difference{
				why:  "deliberate: the gateway counts every BAD towards limits.max_bad_commands, syntax errors included; imap-login counts unknown and invalid commands only, not its parser's complaints",
				ours: []string{"* BYE Too many invalid IMAP commands.", "<closed>"},
			}}}},
		{"too many failed logins", tlsFirst("s STARTTLS", step{send: "a LOGIN x@example.com wrong"}, step{send: "b LOGIN x@example.com wrong"},
			step{send: "c LOGIN x@example.com wrong"}, step{send: "d LOGIN x@example.com wrong", differ: &difference{
				why:  "deliberate: the gateway hangs up after limits.max_auth_failures (3) failed logins; Dovecot 2.3's login processes only slow them down (auth penalty)",
				ours: []string{"* BYE Too many authentication failures.", "<closed>"},
			}})},
	}
}

// TestParityIMAP compares the gateway's IMAP pre-login dialogue with
// Dovecot 2.3's imap-login, line by line.
func TestParityIMAP(t *testing.T) {
	pe := startParity(t, 3)
	pe.compare(t, imapParity, imapScripts(), 1)
}
