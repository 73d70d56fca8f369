// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
)

// Lookuper finds a recipient without a password: passdb.Chain and
// userdb.Chain both are one.
type Lookuper interface {
	Lookup(ctx context.Context, req *auth.Request) (auth.Result, error)
}

// Server is the LMTP front end; it implements gateway.Handler.
type Server struct {
	Pipeline *gateway.Pipeline
	Lookup   Lookuper
	// Hostname is the name in the greeting and LHLO (default: os.Hostname).
	Hostname string
	// RecipientDelimiter separates +detail from the user ("" = none).
	RecipientDelimiter string
	MaxRecipients      int
	MaxMessageSize     int64 // 0: no limit
	// Timeout bounds each backend's part of a delivery (default 125s,
	// Dovecot's LMTP proxy_timeout); IdleTimeout a client's silence
	// (default 5 min).
	Timeout, IdleTimeout time.Duration
	MaxBadCommands       int
}

func (s *Server) hostname() string {
	if s.Hostname != "" {
		return s.Hostname
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

func (s *Server) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 125 * time.Second
}

func (s *Server) idle() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return 5 * time.Minute
}

// session is one client connection's state.
type session struct {
	srv *Server
	c   *gateway.ClientConn

	greeted  bool
	inMail   bool
	from     string
	params   map[string]string
	rcpts    []*rcpt             // accepted, in RCPT order
	backends map[string]*backend // by backend address and TLS mode
	bad      int
	// tooManyBad: the last invalid command was one too many; the
	// session ends.
	tooManyBad bool
}

// rcpt is one accepted recipient.
type rcpt struct {
	addr   string // as the client gave it
	to     string // as the backend got it (destuser, +detail kept)
	be     *backend
	target *gateway.Target
}

// Serve implements gateway.Handler.
func (srv *Server) Serve(ctx context.Context, c *gateway.ClientConn) {
	s := &session{srv: srv, c: c, backends: map[string]*backend{}}
	defer s.reset()
	if s.reply(reply{220, "", srv.hostname() + " maildirector LMTP ready"}) != nil {
		return
	}
	for {
		c.Conn().SetDeadline(time.Now().Add(srv.idle()))
		line, err := c.ReadLine()
		if err != nil {
			switch {
			case errors.Is(err, gateway.ErrLineTooLong):
				s.reply(reply{500, "5.5.2", "Line too long"})
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.reply(reply{421, "4.4.2", "Disconnected for inactivity"})
			}
			return
		}
		if done := s.command(ctx, string(line)); done {
			return
		}
		if ctx.Err() != nil {
			// The gateway is stopping; the transaction in hand, if any,
			// is over or never reached DATA, so nothing is lost.
			s.reply(reply{421, "4.3.2", "Service shutting down"})
			return
		}
		if s.tooManyBad {
			return
		}
	}
}

func (s *session) reply(r reply) error { return s.c.Printf("%s", r) }

// command runs one command; done ends the session.
func (s *session) command(ctx context.Context, line string) (done bool) {
	if strings.IndexByte(line, 0) >= 0 {
		s.reply(reply{500, "5.5.2", "Garbage received"})
		return true
	}
	verb, arg, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "LHLO":
		if strings.TrimSpace(arg) == "" {
			// Dovecot's words, without an enhanced status code.
			s.badReply(reply{501, "", "Missing hostname"})
			return false
		}
		s.reset()
		s.greeted = true
		s.lhloReply()
	case "HELO", "EHLO":
		// RFC 2033 4.1: an LMTP server must not accept HELO or EHLO;
		// Dovecot's lmtp does not know them.
		s.badReply(reply{500, "5.5.1", "Unknown command"})
	case "MAIL":
		s.mail(arg)
	case "RCPT":
		s.rcpt(ctx, arg)
	case "DATA":
		return s.data(ctx)
	case "RSET":
		if arg != "" {
			s.badReply(invalidParameters)
			return false
		}
		s.reset()
		s.reply(reply{250, "2.0.0", "OK"})
	case "NOOP":
		s.reply(reply{250, "2.0.0", "OK"})
	case "VRFY":
		s.vrfy(arg)
	case "QUIT":
		if arg != "" {
			s.badReply(invalidParameters)
			return false
		}
		s.reply(reply{221, "2.0.0", "Bye"})
		return true
	case "STARTTLS":
		return s.starttls()
	case "XCLIENT":
		s.xclient(arg)
	default:
		s.badReply(reply{500, "5.5.1", "Unknown command"})
	}
	return false
}

// invalidParameters is Dovecot's answer to arguments a command does not
// take, or cannot read.
var invalidParameters = reply{501, "5.5.4", "Invalid parameters"}

// badReply answers an invalid command and counts it. One more than
// MaxBadCommands is answered with 421 instead, and the session ends, as
// Dovecot's lmtp does (lib-smtp's max_bad_commands).
func (s *session) badReply(r reply) {
	s.bad++
	if s.srv.MaxBadCommands > 0 && s.bad > s.srv.MaxBadCommands {
		s.tooManyBad = true
		r = reply{421, "4.7.0", s.srv.hostname() + " Too many invalid commands."}
	}
	s.reply(r)
}

// vrfy answers VRFY (RFC 5321 3.5.3) without confirming or denying: the
// argument must be a string (an atom or a quoted string), as Dovecot's
// lmtp checks.
func (s *session) vrfy(arg string) {
	switch {
	case arg == "":
		s.badReply(invalidParameters)
	case !smtpString(arg):
		s.badReply(reply{501, "5.5.4", "Invalid string parameter: Invalid character in string"})
	default:
		s.reply(reply{252, "2.3.3", "Try RCPT instead"})
	}
}

// smtpString reports whether s is an RFC 5321 String: an Atom, or a
// Quoted-string of printable characters.
func smtpString(s string) bool {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		q := s[1 : len(s)-1]
		for i := 0; i < len(q); i++ {
			switch c := q[i]; {
			case c == '\\':
				if i++; i == len(q) || q[i] < ' ' || q[i] > '~' {
					return false
				}
			case c == '"' || c < ' ' || c > '~':
				return false
			}
		}
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c > '~' || strings.IndexByte(`"(),.:;<>@[\]`, c) >= 0 {
			return false
		}
	}
	return true
}

func (s *session) lhloReply() {
	lines := []string{s.srv.hostname(), "8BITMIME", "ENHANCEDSTATUSCODES", "PIPELINING", "SMTPUTF8"}
	if s.srv.MaxMessageSize > 0 {
		lines = append(lines, "SIZE "+strconv.FormatInt(s.srv.MaxMessageSize, 10))
	} else {
		lines = append(lines, "SIZE")
	}
	if s.c.CanStartTLS() {
		lines = append(lines, "STARTTLS")
	}
	if s.c.Trusted {
		lines = append(lines, "XCLIENT ADDR PORT SESSION TTL")
	}
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		fmt.Fprintf(s.c.W, "250%s%s\r\n", sep, l)
	}
	s.c.W.Flush()
}

func (s *session) mail(arg string) {
	switch {
	case !s.greeted:
		s.badReply(reply{503, "5.5.1", "LHLO first"})
		return
	case s.inMail:
		s.badReply(reply{503, "5.5.0", "MAIL already given"})
		return
	}
	from, params, err := parsePath(arg, "FROM:")
	if errors.Is(err, errNoPrefix) {
		s.badReply(invalidParameters)
		return
	}
	if err != nil {
		s.badReply(reply{501, "5.5.4", "Invalid FROM: " + err.Error()})
		return
	}
	for k := range params {
		// The parameters announced in LHLO; Dovecot refuses any other.
		if k != "SIZE" && k != "BODY" && k != "SMTPUTF8" {
			s.reply(unsupportedParameters)
			return
		}
	}
	if v, ok := params["SIZE"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.badReply(reply{501, "5.5.4", "Invalid SIZE"})
			return
		}
		if s.srv.MaxMessageSize > 0 && n > s.srv.MaxMessageSize {
			s.reply(reply{552, "5.3.4", "Message too big"})
			return
		}
	}
	if b, ok := params["BODY"]; ok && !strings.EqualFold(b, "7BIT") && !strings.EqualFold(b, "8BITMIME") {
		s.reply(reply{555, "5.5.4", "Unsupported mail BODY type"})
		return
	}
	s.inMail, s.from, s.params = true, from, params
	s.reply(reply{250, "2.1.0", "OK"})
}

// reset ends the transaction: backends are told QUIT, leases released.
func (s *session) reset() {
	for _, be := range s.backends {
		be.close()
	}
	for _, r := range s.rcpts {
		r.target.Release()
	}
	s.backends = map[string]*backend{}
	s.rcpts = nil
	s.inMail, s.from, s.params = false, "", nil
}

func (s *session) starttls() bool {
	if s.c.TLS {
		s.reply(reply{502, "5.5.1", "TLS is already active."})
		return false
	}
	if !s.c.CanStartTLS() {
		s.badReply(reply{454, "4.7.0", "TLS not available"})
		return false
	}
	if err := s.reply(reply{220, "2.0.0", "Begin TLS negotiation now."}); err != nil {
		return true
	}
	if err := s.c.StartTLS(); err != nil {
		s.c.Log.Info("lmtp: STARTTLS failed", "reason", err)
		return true
	}
	s.reset()
	s.greeted = false // RFC 3207 4.2: start over
	return false
}

// xclient takes the client's details from a trusted front end (a
// Postfix or another proxy): ADDR, PORT, SESSION and the proxy TTL, which
// stops delivery loops between proxies.
func (s *session) xclient(arg string) {
	if !s.c.Trusted {
		s.badReply(reply{550, "5.7.0", "You are not allowed to use XCLIENT"})
		return
	}
	c := s.c
	for _, kv := range strings.Fields(arg) {
		k, v, _ := strings.Cut(kv, "=")
		v = unxtext(v)
		switch strings.ToUpper(k) {
		case "ADDR":
			if a, err := netip.ParseAddr(strings.TrimPrefix(v, "IPV6:")); err == nil {
				c.Remote = netip.AddrPortFrom(a.Unmap(), c.Remote.Port())
			}
		case "PORT":
			if n, err := strconv.ParseUint(v, 10, 16); err == nil {
				c.Remote = netip.AddrPortFrom(c.Remote.Addr(), uint16(n))
			}
		case "SESSION":
			if v != "" && len(v) <= 64 {
				c.Session = v
			}
		case "TTL":
			if n, err := strconv.Atoi(v); err == nil && n >= 0 && n < c.TTL {
				c.TTL = n
			}
		}
	}
	c.Relog()
	s.reset()
	s.greeted = false
	s.reply(reply{220, "", s.srv.hostname() + " maildirector LMTP ready"})
}

// unxtext decodes RFC 3461 xtext ("+2B" is "+").
func unxtext(s string) string {
	if !strings.Contains(s, "+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '+' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var errTooBig = errors.New("message too big")
