// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// maxBackendLine bounds a backend's lines during login; a backend is
// trusted more than a client, but not to send an endless line.
const maxBackendLine = 64 * 1024

// BackendConn is a connection to a backend during login.
type BackendConn struct {
	conn net.Conn
	R    *bufio.Reader
	W    *bufio.Writer
	// warm: the connection came from the WarmPool (a failed login on it
	// is tried again on a new one).
	warm bool
}

// NewBackendConn wraps c for the login dialogue.
func NewBackendConn(c net.Conn) *BackendConn {
	return &BackendConn{conn: c, R: lineBufs.reader(c, backendReadSize), W: lineBufs.writer(c)}
}

// Conn returns the underlying connection.
func (b *BackendConn) Conn() net.Conn { return b.conn }

// ReadLine reads one line without its CRLF.
func (b *BackendConn) ReadLine() ([]byte, error) {
	line, err := b.R.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		// Longer than the buffer (a big CAPABILITY or ID reply): gather
		// it, up to maxBackendLine.
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = b.R.ReadSlice('\n')
			long = append(long, line...)
			if len(long) > maxBackendLine {
				return nil, errors.New("backend sent an over-long line")
			}
		}
		line = long
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrBackendClosed
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

// ReadFull reads exactly n bytes (a literal in a backend's reply).
func (b *BackendConn) ReadFull(n int) ([]byte, error) {
	buf := make([]byte, n)
	if _, err := io.ReadFull(b.R, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, ErrBackendClosed
		}
		return nil, err
	}
	return buf, nil
}

// Close closes the connection.
func (b *BackendConn) Close() error { return b.conn.Close() }

// StartTLS runs the TLS handshake on the connection (after the protocol's
// STARTTLS, or at once for ssl=yes). Nothing may be buffered: bytes read
// before the handshake would be plaintext injected into the TLS session.
func (b *BackendConn) StartTLS(ctx context.Context, cfg *tls.Config) error {
	if b.R.Buffered() > 0 {
		return errors.New("backend sent data before the TLS handshake")
	}
	tc := tls.Client(b.conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	b.conn = tc
	b.R.Reset(tc)
	b.W.Reset(tc)
	return nil
}

// Session is one relayed login, as the registry lists it.
type Session struct {
	ID      string
	Service string
	User    string
	Backend string
	Remote  netip.AddrPort
	Started time.Time

	relay *relay
}

// Registry knows every relayed session so that operators can list them and
// end them (kick, move, flush).
type Registry struct {
	mu sync.Mutex
	m  map[*Session]struct{}
	n  atomic.Int64
	// poll watches the idle sessions' sockets (see relay).
	poll poller
}

// Add registers s (again is harmless). Front ends register a session
// before telling the client it is logged in, so that limits and listings
// never miss a session the client already knows about.
func (r *Registry) Add(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[*Session]struct{}{}
	}
	if _, ok := r.m[s]; !ok {
		r.m[s] = struct{}{}
		r.n.Add(1)
	}
}

// Remove forgets s (again is harmless).
func (r *Registry) Remove(s *Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[s]; ok {
		delete(r.m, s)
		r.n.Add(-1)
	}
}

// Count returns the number of relayed sessions.
func (r *Registry) Count() int { return int(r.n.Load()) }

// List returns a snapshot of the relayed sessions.
func (r *Registry) List() []Session {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Session, 0, len(r.m))
	for s := range r.m {
		out = append(out, *s)
	}
	return out
}

// SessionKey names a group of sessions: one service on one backend.
type SessionKey struct{ Service, Backend string }

// Counts returns how many sessions each service has on each backend.
func (r *Registry) Counts() map[SessionKey]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[SessionKey]int{}
	for s := range r.m {
		out[SessionKey{s.Service, s.Backend}]++
	}
	return out
}

// CountUserIP returns how many sessions user has from address ip.
func (r *Registry) CountUserIP(user string, ip netip.Addr) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for s := range r.m {
		if s.User == user && s.Remote.Addr() == ip {
			n++
		}
	}
	return n
}

// Kick ends every session of user and returns how many there were.
func (r *Registry) Kick(user string) int {
	r.mu.Lock()
	var victims []*Session
	for s := range r.m {
		if s.User == user {
			victims = append(victims, s)
		}
	}
	r.mu.Unlock()
	for _, s := range victims {
		if s.relay != nil {
			s.relay.close()
		}
	}
	return len(victims)
}

// bufPool holds copy buffers: a flow's first read (see flow) and TLS
// sources. A buffer is taken only once bytes are ready where the source can
// be watched (see relay), so idle sessions do not hold them.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 16*1024); return &b }}

// Relay copies bytes both ways between the logged-in client and backend
// until either side closes or the session is kicked, then closes both. It
// registers the session in reg meanwhile. Bytes either side already sent
// (pipelined commands, the backend's first untagged lines) go first.
func Relay(c *ClientConn, b *BackendConn, s *Session, reg *Registry) (in, out int64) {
	done := make(chan struct{})
	StartRelay(c, b, s, reg, func(i, o int64) {
		in, out = i, o
		close(done)
	})
	<-done
	return in, out
}

// StartRelay is Relay without the wait: it returns once the copying has
// started, and end gets the bytes relayed each way (in: from the client)
// when the session is over, both connections closed and s out of reg.
// end runs on a goroutine of the relay's (or on the caller's, before
// StartRelay returns, if the session ended at once). Meanwhile no
// goroutine waits for a side whose socket the Registry's poller watches.
// s's kicks (Registry.Kick) and c's cut by a stopping server end the
// session; so does s.relay.close (set s.relay with newRelay to end it
// before it starts).
func StartRelay(c *ClientConn, b *BackendConn, s *Session, reg *Registry, end func(in, out int64)) {
	clientConn, backendConn := c.conn, b.conn
	if s.relay == nil {
		s.relay = newRelay(clientConn, backendConn)
	}
	clientConn.SetDeadline(time.Time{})
	backendConn.SetDeadline(time.Time{})
	fromClient, fromBackend := c.lingering(), lingering(b.R)
	// The line buffers are not needed any more; let them go so that an
	// idle session costs little.
	lineBufs.put(c.R, c.W)
	lineBufs.put(b.R, b.W)
	c.R, c.W, b.R, b.W = nil, nil, nil, nil
	if extra := proxyBuffered(clientConn); len(extra) > 0 {
		fromClient = append(fromClient, extra...)
	}

	reg.Add(s)
	s.relay.start(fromClient, fromBackend, reg, s, c.CloseOnCut(s.relay), end)
}

func lingering(r *bufio.Reader) []byte {
	n := r.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := r.Peek(n)
	return append([]byte(nil), b...)
}

// smallReadSize is what a relay from a TLS source holds while it waits
// in Read. Commands of an idle IMAP/POP3/Sieve session fit in it; bigger
// reads (APPEND, PUTSCRIPT) continue into a pooled buffer (see copyOnce).
const smallReadSize = 2048

// smallPool holds those buffers for TLS sources the poller watches: they
// read only once bytes are there.
var smallPool = sync.Pool{New: func() any { b := make([]byte, smallReadSize); return &b }}

// copyBlocking copies from a source that cannot be watched for
// readability (TLS over a PROXY header's reader, or anything where the
// poller is not available), so it must block in Read with a buffer in
// hand: a small one (see copyOnce).
func copyBlocking(dst io.Writer, src net.Conn) int64 {
	var n int64
	small := make([]byte, smallReadSize)
	for {
		w, err := copyOnce(dst, src, small)
		n += w
		if err != nil {
			return n
		}
	}
}

// copyOnce waits in Read with small, and writes what came. When a read
// fills it, more is probably there, so the bytes move to a pooled buffer
// which takes whatever the source can give without waiting — crypto/tls
// holds the rest of a record, often the next records too — and goes out
// in one write. Without waiting means a read deadline already past: a
// Read then returns what is buffered, or times out at once without
// touching the socket (a timeout does not break a tls.Conn). Waiting with
// the big buffer instead would either hold it through idle time or, for
// a message that ends exactly at the small buffer's size, hold back bytes
// the other side needs before it sends more.
func copyOnce(dst io.Writer, src net.Conn, small []byte) (int64, error) {
	r, err := src.Read(small)
	out := small[:r]
	var bp *[]byte
	if r == len(small) && err == nil {
		bp = bufPool.Get().(*[]byte)
		big := *bp
		copy(big, small)
		r, err = drain(src, big, r)
		out = big[:r]
	}
	var n int64
	if len(out) > 0 {
		w, werr := dst.Write(out)
		n = int64(w)
		if werr != nil && err == nil {
			err = werr
		}
	}
	if bp != nil {
		bufPool.Put(bp)
	}
	return n, err
}

// copyBuffered writes all that src holds already (crypto/tls's decoded
// or whole records), without touching the socket.
func copyBuffered(dst io.Writer, src net.Conn) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var n int64
	for {
		r, err := drain(src, *bp, 0)
		if r > 0 {
			w, werr := dst.Write((*bp)[:r])
			n += int64(w)
			if werr != nil && err == nil {
				err = werr
			}
		}
		// A buffer not filled: src had no more without its socket.
		if err != nil || r < len(*bp) {
			return n, err
		}
	}
}

// drain reads into buf[have:] what src has without waiting and returns
// the new fill. An error is returned only if src failed for good.
func drain(src net.Conn, buf []byte, have int) (int, error) {
	if src.SetReadDeadline(time.Unix(1, 0)) != nil {
		return have, nil
	}
	var err error
	for have < len(buf) {
		var r int
		r, err = src.Read(buf[have:])
		have += r
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = nil
			}
			break
		}
	}
	if derr := src.SetReadDeadline(time.Time{}); derr != nil && err == nil {
		err = derr
	}
	return have, err
}
