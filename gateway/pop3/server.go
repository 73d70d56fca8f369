// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"context"
	"errors"
	"strings"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// Server is the POP3 front end; it implements gateway.Handler.
type Server struct {
	Pipeline *gateway.Pipeline
	Registry *gateway.Registry
	Mechs    []mechs.Mechanism
	// Greeting is the text of the greeting after "+OK " (and the XCLIENT
	// code a trusted peer gets).
	Greeting        string
	MaxAuthFailures int
	MaxBadCommands  int
}

// preLoginCaps are announced before login, as Dovecot's pop3-login does
// (RFC 2449 6); the client asks the backend again after login.
var preLoginCaps = []string{"CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"}

// session is one client's pre-login state: the shared flow, and the
// name a USER command gave, for the PASS that follows.
type session struct {
	gateway.Flow
	srv     *Server
	c       *gateway.ClientConn
	user    string
	hasUser bool
}

// Serve implements gateway.Handler.
func (s *Server) Serve(ctx context.Context, c *gateway.ClientConn) {
	ss := &session{srv: s, c: c, Flow: gateway.Flow{C: c, Pipeline: s.Pipeline, Registry: s.Registry, Service: "pop3",
		MaxAuthFailures: s.MaxAuthFailures, MaxBadCommands: s.MaxBadCommands}}
	greeting := s.Greeting
	if greeting == "" {
		greeting = "maildirector ready."
	}
	if c.Trusted {
		// Dovecot's pop3-login tells a trusted peer (another proxy) that
		// it may forward the client's address with XCLIENT.
		greeting = "[XCLIENT] " + greeting
	}
	gateway.Serve(ctx, func() error { return c.Printf("+OK %s", greeting) }, ss.next, ss.disconnect)
}

// disconnect tells the client why it is being disconnected, when it can
// still hear it, and logs it. POP3 has no untagged BYE: the farewell is
// an -ERR line, then the connection closes.
func (ss *session) disconnect(err error) {
	gateway.Disconnect(ss.c, err, func(text string) { ss.c.Printf("-ERR %s", text) }, "Too many invalid bad commands.")
}

// mechanisms returns the SASL mechanisms offered now.
func (ss *session) mechanisms() []string {
	var names []string
	for _, m := range mechs.Offer(ss.srv.Mechs, ss.c.PlaintextAllowed(), ss.c.TLS) {
		names = append(names, m.Name)
	}
	return names
}

// capa answers CAPA (RFC 2449 5) with a multi-line list. Arguments are
// ignored, as pop3-login does.
func (ss *session) capa() error {
	lines := append([]string{"+OK"}, preLoginCaps...)
	if ss.c.CanStartTLS() {
		lines = append(lines, "STLS")
	}
	if ss.c.PlaintextAllowed() {
		lines = append(lines, "USER")
	}
	if m := ss.mechanisms(); len(m) > 0 {
		lines = append(lines, "SASL "+strings.Join(m, " "))
	}
	lines = append(lines, ".")
	return ss.c.Printf("%s", strings.Join(lines, "\r\n"))
}

// next reads and runs one command. done means the session is over (QUIT,
// or relayed and finished); err means disconnect with a reason.
func (ss *session) next(ctx context.Context) (done bool, err error) {
	line, err := ss.c.ReadLine()
	if err != nil {
		return false, err
	}
	cmd, err := parseCommand(line)
	if errors.Is(err, errBadChars) {
		return false, ss.bad("Invalid characters in command line.")
	}
	if err != nil {
		return false, err
	}
	switch cmd.name {
	case "CAPA":
		return false, ss.capa()
	case "QUIT":
		// pop3-login's words; the mail process, after login, adds a
		// full stop.
		ss.c.Printf("+OK Logging out")
		return true, nil
	case "APOP":
		// APOP needs a stored plaintext password and a challenge in the
		// greeting; like Dovecot without the apop mechanism, refuse it.
		return false, ss.c.Printf("-ERR APOP not enabled.")
	case "STLS":
		return false, ss.stls()
	case "XCLIENT":
		return false, ss.xclient(cmd)
	case "USER":
		return false, ss.userCmd(cmd)
	case "PASS":
		return ss.pass(ctx, cmd)
	case "AUTH":
		return ss.auth(ctx, cmd)
	}
	// NOOP, STAT, RETR and the rest belong to the TRANSACTION state
	// (RFC 1939 5), after login.
	return false, ss.bad("Unknown command.")
}

// bad answers -ERR to an invalid command and counts it; too many end the
// connection, after the answer, as pop3-login does.
func (ss *session) bad(msg string) error {
	return ss.Invalid(func() error { return ss.c.Printf("-ERR %s", msg) })
}
