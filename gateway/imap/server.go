// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// Server is the IMAP front end; it implements gateway.Handler.
type Server struct {
	Pipeline *gateway.Pipeline
	Registry *gateway.Registry
	Mechs    []mechs.Mechanism
	// Greeting is the text after the greeting's capability code.
	Greeting        string
	MaxAuthFailures int
	MaxBadCommands  int
}

// preLoginCaps are announced before login, as Dovecot's imap-login does;
// the client gets the backend's own list with the tagged OK of its login.
const preLoginCaps = "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"

// session is one client's pre-login state.
type session struct {
	gateway.Flow
	srv *Server
	c   *gateway.ClientConn
}

// Serve implements gateway.Handler.
func (s *Server) Serve(ctx context.Context, c *gateway.ClientConn) {
	ss := &session{srv: s, c: c, Flow: gateway.Flow{C: c, Pipeline: s.Pipeline, Registry: s.Registry, Service: "imap",
		MaxAuthFailures: s.MaxAuthFailures, MaxBadCommands: s.MaxBadCommands, HangUpBeforeLastBad: true}}
	greeting := s.Greeting
	if greeting == "" {
		greeting = "maildirector ready."
	}
	gateway.Serve(ctx, func() error { return c.Printf("* OK [CAPABILITY %s] %s", ss.capabilities(), greeting) }, ss.next, ss.disconnect)
}

// disconnect tells the client why it is being disconnected, when it can
// still hear it, and logs it.
func (ss *session) disconnect(err error) {
	gateway.Disconnect(ss.c, err, func(text string) { ss.c.Printf("* BYE %s", text) }, "Too many invalid IMAP commands.")
}

func (ss *session) capabilities() string {
	var b strings.Builder
	b.WriteString(preLoginCaps)
	if ss.c.CanStartTLS() {
		b.WriteString(" STARTTLS")
	}
	plain := ss.c.PlaintextAllowed()
	if !plain {
		b.WriteString(" LOGINDISABLED")
	}
	for _, m := range mechs.Offer(ss.srv.Mechs, plain, ss.c.TLS) {
		b.WriteString(" AUTH=")
		b.WriteString(m.Name)
	}
	return b.String()
}

// next reads and runs one command. done means the session is over (logout
// or relayed and finished); err means disconnect with a reason.
func (ss *session) next(ctx context.Context) (done bool, err error) {
	line, more, err := ss.c.ReadLineHead()
	if err != nil {
		return false, err
	}
	if rest, ok := isID(line); ok && bytes.IndexByte(line, 0) < 0 {
		tag, _, _ := bytes.Cut(line, []byte(" "))
		if t := string(tag); printable(t) && !strings.ContainsAny(t, "+*%") {
			return false, ss.id(t, rest, more)
		}
	}
	if more {
		return false, gateway.ErrLineTooLong
	}
	cmd, err := parseCommand(line, ss, ss.c.MaxLiteral())
	if err != nil {
		var se *syntaxError
		if !errors.As(err, &se) {
			return false, err
		}
		tag := "*"
		if se.tagged {
			tag = cmd.tag
		}
		return false, ss.bad(tag, se.msg)
	}
	switch cmd.name {
	case "CAPABILITY":
		ss.c.Printf("* CAPABILITY %s", ss.capabilities())
		return false, ss.c.Printf("%s OK Pre-login capabilities listed, post-login capabilities have more.", cmd.tag)
	case "NOOP":
		return false, ss.c.Printf("%s OK NOOP completed.", cmd.tag)
	case "LOGOUT":
		ss.c.Printf("* BYE Logging out")
		ss.c.Printf("%s OK Logout completed.", cmd.tag)
		return true, nil
	case "STARTTLS":
		return false, ss.starttls(cmd)
	case "ENABLE":
		// imap-login's answer: extensions are enabled after login, by
		// the client asking the backend.
		ss.c.Printf("* ENABLED")
		return false, ss.c.Printf("%s OK ENABLE ignored in non-authenticated state.", cmd.tag)
	case "LOGIN":
		return ss.login(ctx, cmd)
	case "AUTHENTICATE":
		return ss.authenticate(ctx, cmd)
	}
	return false, ss.bad(cmd.tag, "Error in IMAP command received by server.")
}

// bad answers BAD and counts it; too many end the connection.
func (ss *session) bad(tag, msg string) error {
	return ss.Invalid(func() error { return ss.c.Printf("%s BAD %s", tag, msg) })
}

// literal implements lineSource: a synchronizing literal gets its
// continuation request first.
func (ss *session) literal(n int, sync bool) ([]byte, error) {
	if sync {
		if err := ss.c.Printf("+ OK"); err != nil {
			return nil, err
		}
	}
	return ss.c.ReadFull(n)
}

func (ss *session) nextLine() ([]byte, error) { return ss.c.ReadLine() }
