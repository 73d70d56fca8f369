// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
)

// Lookuper finds a user without a password: passdb.Chain is one. Dovecot's
// doveadm proxy asks the passdb too (auth_master_pass_lookup).
type Lookuper interface {
	Lookup(ctx context.Context, req *auth.Request) (auth.Result, error)
}

// Server is the doveadm front end; it implements gateway.Handler.
type Server struct {
	Pipeline *gateway.Pipeline
	Lookup   Lookuper
	// Password is doveadm_password: clients must give it, and backends
	// are given it (Dovecot uses the one setting both ways too).
	Password string
	// CommandTimeout bounds a command's silence: the backend's, and the
	// client's while it sends input or takes the reply (default 30 min;
	// doveadm commands such as index or force-resync may run long).
	// IdleTimeout bounds the wait for the next command (default 5 min).
	CommandTimeout, IdleTimeout time.Duration
}

// maxCommandLine bounds a command line (Dovecot's doveadm server reads
// lines of up to 1 MiB: search queries with long UID sets).
const maxCommandLine = 1 << 20

func (s *Server) commandTimeout() time.Duration {
	if s.CommandTimeout > 0 {
		return s.CommandTimeout
	}
	return 30 * time.Minute
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
	out *muxWriter
}

// Serve implements gateway.Handler.
func (srv *Server) Serve(ctx context.Context, c *gateway.ClientConn) {
	s := &session{srv: srv, c: c}
	if !s.handshake(ctx) {
		return
	}
	for {
		c.Conn().SetDeadline(time.Now().Add(srv.idle()))
		line, err := readLongLine(c.R, maxCommandLine)
		if err != nil {
			if errors.Is(err, gateway.ErrLineTooLong) {
				c.Log.Warn("doveadm: command line too long")
			}
			return
		}
		if !s.command(ctx, line) {
			return
		}
		if ctx.Err() != nil {
			// The gateway is stopping; no command is running.
			return
		}
	}
}

// handshake runs the version exchange and the authentication, and says
// whether commands may follow.
func (s *session) handshake(ctx context.Context) bool {
	c := s.c
	line, err := c.ReadLine()
	if err != nil {
		c.Log.Debug("doveadm: client left before the handshake", "reason", err)
		return false
	}
	minor, ok := parseVersion(string(line), "doveadm-server")
	if !ok {
		// Dovecot closes without a word too: the peer speaks another
		// protocol or version.
		c.Log.Info("doveadm: not a compatible doveadm client", "line", printable(line))
		return false
	}
	if minor > 0 {
		c.W.WriteString(clientVersionLine + "\n")
	}
	if s.preauthenticated() {
		c.W.WriteString("+\n")
	} else {
		c.W.WriteString("-\n")
		if c.W.Flush() != nil || !s.authenticate(ctx) {
			return false
		}
		c.W.WriteString("+\n")
	}
	if c.W.Flush() != nil {
		return false
	}
	// From the "+" on, the output is multiplexed for clients that know it.
	s.out = newMuxWriter(c.W, minor > 0)
	return true
}

// preauthenticated: a UNIX socket of mode 0600 is only open to its owner,
// who needs no password — Dovecot's doveadm-server rule.
func (s *session) preauthenticated() bool {
	l := s.c.Listener
	return strings.HasPrefix(l.Address, "/") && l.Mode.Perm() == 0o600
}

// authenticate reads STARTTLS or PLAIN lines until the client proved it
// knows the doveadm password. A wrong one is a failed login: logged for
// fail2ban, penalized like any other, and answered "-" before closing.
func (s *session) authenticate(ctx context.Context) bool {
	c := s.c
	p := s.srv.Pipeline
	for {
		line, err := c.ReadLine()
		if err != nil {
			return false
		}
		if string(line) == "STARTTLS" {
			if !c.CanStartTLS() {
				c.Log.Info("doveadm: STARTTLS asked for, but not offered here")
				s.authRefused()
				return false
			}
			if err := startTLS(c); err != nil {
				c.Log.Info("doveadm: STARTTLS failed", "reason", err)
				return false
			}
			continue
		}
		req := &auth.Request{Service: "doveadm", User: "doveadm", Remote: c.Remote, Local: c.Local, Secured: c.Secured(), TLS: c.TLS, Session: c.Session}
		if wait := p.Penalty.Wait(c.Remote.Addr()); wait > 0 {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(wait):
			}
		}
		if reason := s.checkPlain(line); reason != "" {
			p.LoginFailed(ctx, req, "doveadm", reason)
			s.authRefused()
			return false
		}
		return true
	}
}

func (s *session) authRefused() {
	s.c.W.WriteString("-\n")
	s.c.W.Flush()
}

// checkPlain checks "PLAIN\t<base64 \0doveadm\0password>" and returns
// why it is refused, "" when it is not.
func (s *session) checkPlain(line []byte) string {
	b64, ok := strings.CutPrefix(string(line), "PLAIN\t")
	if !ok {
		return "not PLAIN authentication"
	}
	data, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return "invalid base64"
	}
	pass, ok := strings.CutPrefix(string(data), "\x00doveadm\x00")
	if !ok {
		return "not authenticating as doveadm"
	}
	want := s.srv.Password
	if want == "" || subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
		return "doveadm password mismatch"
	}
	return ""
}

// startTLS runs the TLS handshake after STARTTLS. The doveadm protocol has
// no go-ahead: the client starts the handshake right behind its STARTTLS
// line, so bytes already read are the handshake's own (they go to the
// TLS layer, which refuses anything else — no plaintext can be injected
// into the session).
func startTLS(c *gateway.ClientConn) error {
	pre, _ := c.R.Peek(c.R.Buffered())
	tc := tls.Server(&prefixConn{Conn: c.Conn(), pre: bytes.Clone(pre)}, c.Listener.TLSConfig)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.R.Reset(tc)
	c.W.Reset(tc)
	c.TLS = true
	return nil
}

// prefixConn is a connection whose first bytes were read already.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// readLongLine reads one line of up to max bytes, without its LF (or
// CRLF), however small r's buffer is.
func readLongLine(r *bufio.Reader, max int) (string, error) {
	var long []byte
	for {
		chunk, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long)+len(chunk) > max {
				return "", gateway.ErrLineTooLong
			}
			long = append(long, chunk...)
			continue
		}
		if err != nil {
			return "", err
		}
		if long != nil {
			chunk = append(long, chunk...)
		}
		if len(chunk) > max {
			return "", gateway.ErrLineTooLong
		}
		line := chunk[:len(chunk)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		return string(line), nil
	}
}

// printable quotes a line for the log, shortened.
func printable(b []byte) string {
	if len(b) > 64 {
		b = b[:64]
	}
	return fmt.Sprintf("%q", b)
}
