// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// DefaultExtensions is the SIEVE capability of a Dovecot 2.3.19 backend
// with Pigeonhole 0.5.19 and its default sieve_extensions, as it announces
// it. The gateway announces what the backends support: a client decides
// from it which scripts it may upload.
const DefaultExtensions = "fileinto reject envelope encoded-character vacation subaddress " +
	"comparator-i;ascii-numeric relational regex imap4flags copy include variables body " +
	"enotify environment mailbox date index ihave duplicate mime foreverypart extracttext"

// Server is the ManageSieve front end; it implements gateway.Handler.
type Server struct {
	Pipeline *gateway.Pipeline
	Registry *gateway.Registry
	Mechs    []mechs.Mechanism
	// Implementation is the IMPLEMENTATION capability ("maildirector").
	Implementation string
	// Extensions is the SIEVE capability: the backends' Sieve extensions,
	// space-separated (DefaultExtensions when empty).
	Extensions string
	// Notify is the NOTIFY capability, the enotify methods ("mailto").
	Notify string
	// Greeting is the text of the greeting's OK ("maildirector ready.").
	Greeting        string
	MaxAuthFailures int
	MaxBadCommands  int
}

// orDefault returns s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// session is one client's pre-login state.
type session struct {
	gateway.Flow
	srv *Server
	c   *gateway.ClientConn
}

// Serve implements gateway.Handler. The greeting is the capability list
// and an OK (RFC 5804 1.7).
func (s *Server) Serve(ctx context.Context, c *gateway.ClientConn) {
	ss := &session{srv: s, c: c, Flow: gateway.Flow{C: c, Pipeline: s.Pipeline, Registry: s.Registry, Service: "sieve",
		MaxAuthFailures: s.MaxAuthFailures, MaxBadCommands: s.MaxBadCommands, HangUpBeforeLastBad: true}}
	gateway.Serve(ctx, func() error {
		ss.writeCapabilities()
		return c.Printf("OK %s", quote(orDefault(s.Greeting, "maildirector ready.")))
	}, ss.next, ss.disconnect)
}

// writeCapabilities queues the capability lines (RFC 5804 1.7), in
// Pigeonhole's order. SASL lists only the mechanisms usable now; XCLIENT
// is offered to trusted peers, as Pigeonhole does.
func (ss *session) writeCapabilities() {
	w, srv := ss.c.W, ss.srv
	var sasl []string
	for _, m := range mechs.Offer(srv.Mechs, ss.c.PlaintextAllowed(), ss.c.TLS) {
		sasl = append(sasl, m.Name)
	}
	fmt.Fprintf(w, "\"IMPLEMENTATION\" %s\r\n", quote(orDefault(srv.Implementation, "maildirector")))
	fmt.Fprintf(w, "\"SIEVE\" %s\r\n", quote(orDefault(srv.Extensions, DefaultExtensions)))
	fmt.Fprintf(w, "\"NOTIFY\" %s\r\n", quote(orDefault(srv.Notify, "mailto")))
	fmt.Fprintf(w, "\"SASL\" %s\r\n", quote(strings.Join(sasl, " ")))
	if ss.c.CanStartTLS() {
		w.WriteString("\"STARTTLS\"\r\n")
	}
	w.WriteString("\"VERSION\" \"1.0\"\r\n")
	if ss.c.Trusted {
		w.WriteString("\"XCLIENT\"\r\n")
	}
}

// next reads and runs one command. done means the session is over (logout
// or relayed and finished); err means disconnect with a reason.
func (ss *session) next(ctx context.Context) (done bool, err error) {
	line, err := ss.c.ReadLine()
	if err != nil {
		return false, err
	}
	cmd, err := parseCommand(line, ss, ss.c.MaxLiteral())
	if err != nil {
		var se *syntaxError
		if !errors.As(err, &se) {
			return false, err
		}
		return false, ss.bad(se.msg)
	}
	switch cmd.name {
	case "CAPABILITY":
		if len(cmd.args) != 0 {
			break
		}
		ss.writeCapabilities()
		return false, ss.c.Printf(`OK "Capability completed."`)
	case "NOOP":
		return false, ss.noop(cmd)
	case "LOGOUT":
		if len(cmd.args) != 0 {
			break
		}
		ss.c.Printf(`OK "Logout completed."`)
		return true, nil
	case "STARTTLS":
		return false, ss.starttls(cmd)
	case "AUTHENTICATE":
		return ss.authenticate(ctx, cmd)
	case "XCLIENT":
		if ss.c.Trusted {
			return false, ss.xclient(cmd)
		}
		// managesieve-login knows the command and tells an untrusted
		// client so, without counting it as invalid.
		return false, ss.c.Printf(`NO "You are not from trusted IP"`)
	}
	return false, ss.bad(errCommand)
}

// noop runs NOOP [tag] (RFC 5804 2.12): a string argument comes back in
// a TAG response code.
func (ss *session) noop(cmd *command) error {
	switch {
	case len(cmd.args) == 0:
		// managesieve-login's words, capital C and all.
		return ss.c.Printf(`OK "NOOP Completed"`)
	case len(cmd.args) > 1:
		return ss.bad(errCommand)
	case cmd.args[0].kind != argString:
		return ss.c.Printf(`NO "Invalid echo tag."`)
	}
	return ss.c.Printf(`OK (TAG %s) "Done"`, quote(cmd.args[0].s))
}

// bad answers NO to an invalid command and counts it; too many end the
// connection.
func (ss *session) bad(msg string) error {
	return ss.Invalid(func() error { return ss.c.Printf("NO %s", quote(msg)) })
}

// disconnect tells the client why it is being disconnected, when it can
// still hear it, and logs it.
func (ss *session) disconnect(err error) {
	gateway.Disconnect(ss.c, err, func(text string) {
		if errors.Is(err, errLiteralTooBig) {
			// managesieve-login's parser's words.
			text = "Literal size too large"
		}
		ss.c.Printf("BYE %s", quote(text))
	}, "Too many invalid MANAGESIEVE commands.")
}

// literal and nextLine implement lineSource on the client connection.
func (ss *session) literal(n int) ([]byte, error) { return ss.c.ReadFull(n) }
func (ss *session) nextLine() ([]byte, error)     { return ss.c.ReadLine() }
