// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// DefaultProxyTTL is the hop budget a connection starts with (Dovecot's
// LOGIN_PROXY_TTL); every proxy hop forwards it decremented, so that a
// proxy loop ends instead of multiplying connections.
const DefaultProxyTTL = 5

// ErrLineTooLong is returned by ReadLine for a line over the limit.
var ErrLineTooLong = errors.New("line too long")

// ClientConn is a client connection before and during login.
type ClientConn struct {
	conn net.Conn
	R    *bufio.Reader
	W    *bufio.Writer

	// Peer is the TCP peer (after a PROXY header, once supported); Trusted
	// is whether it lies in trusted_networks.
	Peer    netip.AddrPort
	Trusted bool
	// Remote and Local are the client's and our address as forwarded to
	// backends; a trusted peer may override them with IMAP ID
	// x-originating-ip and friends.
	Remote, Local netip.AddrPort
	TLS           bool
	Session       string
	TTL           int // proxy hops left (x-proxy-ttl from a trusted peer)

	Listener *Listener
	Log      *slog.Logger
	baseLog  *slog.Logger
	maxLine  int
	deadline time.Time
	state    *connState
	// prelogin and using are the listener's counts (Prelogin, InUse)
	// while this connection is counted in them.
	prelogin, using *atomic.Int64
	// plEntry is the connection's place in the pre-login bounds.
	plEntry *preloginEntry
	plTable *preloginTable
	// handoff, set by a server that allows it, lets a relayed session
	// outlive its handler (see handOff).
	handoff *handoff
	// relogged is what Relog made Log of (see logLater).
	relogged relogged
}

// handoff is a server's offer to let the relay end a connection instead
// of the handler's return: the goroutine that logged the client in, its
// stack grown deep on the way, then does not wait through the session.
type handoff struct {
	taken bool
	// done is the server's end of the connection (closing it, forgetting
	// it, counting its handler out), called once the relay is over.
	done func()
}

// handOff takes the server's offer (ok false: none; relay to the end
// before returning). The caller must call done once the session is over
// (the relay has closed the connection); the server does nothing when
// the handler returns.
func (c *ClientConn) handOff() (done func(), ok bool) {
	if c.handoff == nil {
		return nil, false
	}
	c.handoff.taken = true
	return c.handoff.done, true
}

// leavePrelogin takes the connection out of its listener's pre-login
// count (once; the session's own goroutine calls it).
func (c *ClientConn) leavePrelogin() {
	if c.prelogin != nil {
		c.prelogin.Add(-1)
		c.using.Add(-1)
		c.prelogin, c.using = nil, nil
	}
	if c.plEntry != nil {
		c.plTable.leave(c.plEntry)
		c.plEntry, c.plTable = nil, nil
	}
}

func newClientConn(c net.Conn, l *Listener, log *slog.Logger, maxLine int, deadline time.Time, peer, local netip.AddrPort) *ClientConn {
	cc := &ClientConn{
		conn:     c,
		Listener: l,
		Session:  NewSessionID(),
		TTL:      DefaultProxyTTL,
		maxLine:  maxLine,
		deadline: deadline,
		Peer:     peer,
		Remote:   peer,
		Local:    local,
	}
	// A UNIX socket's peer is on this machine: trusted, like Dovecot's
	// local connections.
	cc.Trusted = l.unix() || l.trusted(cc.Peer.Addr())
	if _, ok := c.(*tls.Conn); ok {
		cc.TLS = true
	}
	cc.R = lineBufs.reader(c, maxLine)
	cc.W = lineBufs.writer(c)
	cc.baseLog = log
	cc.Relog()
	c.SetDeadline(deadline)
	return cc
}

// NewSessionID returns a random session id in Dovecot's style (base64 of
// 9 random bytes).
func NewSessionID() string {
	var b [9]byte
	rand.Read(b[:])
	return base64.RawStdEncoding.EncodeToString(b[:])
}

func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// Relog rebuilds Log from the current Session and Remote: call it after a
// trusted peer forwarded them (ID, XCLIENT), so that log lines carry each
// key once.
func (c *ClientConn) Relog() {
	remote := "local"
	if c.Remote.IsValid() {
		remote = c.Remote.String()
	}
	c.Log = c.baseLog.With("session", c.Session, "service", c.Listener.Protocol, "remote", remote)
	c.relogged = relogged{c.Log, c.Session, c.Listener.Protocol, remote}
}

// relogged is what the last Relog made Log of.
type relogged struct {
	log                      *slog.Logger
	session, service, remote string
}

// logLater returns what makes Log again, for a relayed session's last
// line: a logger's attributes, formatted ahead, are some hundred bytes,
// and an idle session need not keep them. A Log that is not Relog's (a
// front end added to it) is kept as it is.
func (c *ClientConn) logLater() func() *slog.Logger {
	if r := c.relogged; r.log != nil && r.log == c.Log {
		base, session, service, remote := c.baseLog, r.session, r.service, r.remote
		return func() *slog.Logger { return base.With("session", session, "service", service, "remote", remote) }
	}
	log := c.Log
	return func() *slog.Logger { return log }
}

// Conn returns the current connection (a *tls.Conn after STARTTLS).
func (c *ClientConn) Conn() net.Conn { return c.conn }

// SetBusy marks (or unmarks) a stretch that a stopping gateway must let
// finish instead of cutting: see Server.Shutdown. The handler is still
// told to stop (its context ends); it should end the connection at the
// next point where nothing is lost.
func (c *ClientConn) SetBusy(b bool) {
	if c.state != nil {
		c.state.busy.Store(b)
	}
}

// CloseOnCut has x closed too when a stopping gateway cuts this
// connection, so that a handler waiting on x (a backend that is slow to
// answer) returns at once instead of at its timeout. The returned func
// forgets x; call it when x is closed anyway.
func (c *ClientConn) CloseOnCut(x io.Closer) (forget func()) {
	if c.state == nil {
		return func() {}
	}
	return c.state.closeOnCut(x)
}

// Secured reports whether plaintext credentials may cross this connection:
// it is TLS, from a trusted network, or local (client and server on one
// address), as Dovecot decides "secured".
func (c *ClientConn) Secured() bool {
	return c.TLS || c.Trusted || (c.Peer.IsValid() && c.Peer.Addr() == c.Local.Addr())
}

// ReadLine reads one line, without its CRLF (or bare LF), of at most the
// configured maximum length. The returned slice is valid until the next read.
func (c *ClientConn) ReadLine() ([]byte, error) {
	line, err := c.R.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, ErrLineTooLong
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// ReadLineHead is ReadLine, except that a line longer than the limit is
// not an error: its first bytes come back with more set, and the rest
// stays to be read (for a command that reads its arguments as a stream,
// IMAP ID). The slice is valid until the next read.
func (c *ClientConn) ReadLineHead() (line []byte, more bool, err error) {
	line, err = c.R.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return line, true, nil
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, false, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, false, nil
}

// ReadFull reads exactly n bytes (an IMAP literal, for example).
func (c *ClientConn) ReadFull(n int) ([]byte, error) {
	buf := make([]byte, n)
	_, err := io.ReadFull(c.R, buf)
	return buf, err
}

// Printf writes a formatted line (CRLF added) and flushes it.
func (c *ClientConn) Printf(format string, args ...any) error {
	fmt.Fprintf(c.W, format, args...)
	c.W.WriteString("\r\n")
	return c.W.Flush()
}

// PlaintextAllowed reports whether plaintext credentials (IMAP LOGIN,
// POP3 USER/PASS, plaintext SASL) are accepted here: on a secured
// connection, or where the listener allows them anyway (Dovecot's
// disable_plaintext_auth = no).
func (c *ClientConn) PlaintextAllowed() bool {
	return c.Secured() || c.Listener.AllowPlaintext
}

// CanStartTLS reports whether STARTTLS is offered now.
func (c *ClientConn) CanStartTLS() bool {
	return !c.TLS && c.Listener.TLSMode == TLSStartTLS && c.Listener.TLSConfig != nil
}

// StartTLS upgrades the connection to TLS. The caller has already sent its
// go-ahead. Bytes the client pipelined after the STARTTLS command would be
// injected plaintext (the STARTTLS command-injection attack), so they are
// refused.
func (c *ClientConn) StartTLS() error {
	if c.R.Buffered() > 0 {
		return errors.New("STARTTLS: client sent data before the TLS handshake")
	}
	tc := tls.Server(c.conn, c.Listener.TLSConfig)
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("TLS handshake: %w", err)
	}
	c.conn = tc
	c.TLS = true
	c.R.Reset(tc)
	c.W.Reset(tc)
	return nil
}

// Close closes the connection.
func (c *ClientConn) Close() error { return c.conn.Close() }

// Lingering returns bytes the client already sent that the reader holds,
// so that a relay can pass them on before copying the rest.
func (c *ClientConn) lingering() []byte {
	n := c.R.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := c.R.Peek(n)
	return append([]byte(nil), b...)
}

// MaxLiteral bounds literals before login: a user name or password never
// needs more than a line's worth.
func (c *ClientConn) MaxLiteral() int { return c.maxLine }
