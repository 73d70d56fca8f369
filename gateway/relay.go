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
}

// NewBackendConn wraps c for the login dialogue.
func NewBackendConn(c net.Conn) *BackendConn {
	return &BackendConn{conn: c, R: bufio.NewReaderSize(c, maxBackendLine), W: bufio.NewWriterSize(c, 4096)}
}

// Conn returns the underlying connection.
func (b *BackendConn) Conn() net.Conn { return b.conn }

// ReadLine reads one line without its CRLF.
func (b *BackendConn) ReadLine() ([]byte, error) {
	line, err := b.R.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return nil, errors.New("backend sent an over-long line")
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

	client, backend net.Conn
}

// Registry knows every relayed session so that operators can list them and
// end them (kick, move, flush).
type Registry struct {
	mu sync.Mutex
	m  map[*Session]struct{}
	n  atomic.Int64
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
		s.client.Close()
		s.backend.Close()
	}
	return len(victims)
}

// bufPool holds copy buffers for relays that cannot splice (TLS on either
// side). They are small: an idle session holds one per direction.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 16*1024); return &b }}

// Relay copies bytes both ways between the logged-in client and backend
// until either side closes or the session is kicked, then closes both. It
// registers the session in reg meanwhile. Bytes either side already sent
// (pipelined commands, the backend's first untagged lines) go first.
func Relay(c *ClientConn, b *BackendConn, s *Session, reg *Registry) (in, out int64) {
	clientConn, backendConn := c.conn, b.conn
	s.client, s.backend = clientConn, backendConn
	clientConn.SetDeadline(time.Time{})
	backendConn.SetDeadline(time.Time{})
	fromClient, fromBackend := c.lingering(), lingering(b.R)
	// The line buffers are not needed any more; let them go so that an
	// idle session costs little.
	c.R, c.W, b.R, b.W = nil, nil, nil, nil

	reg.Add(s)
	defer reg.Remove(s)

	done := make(chan int64, 1)
	go func() {
		done <- pump(clientConn, backendConn, fromBackend)
		clientConn.Close()
		backendConn.Close()
	}()
	in = pump(backendConn, clientConn, fromClient)
	clientConn.Close()
	backendConn.Close()
	out = <-done
	return in, out
}

func lingering(r *bufio.Reader) []byte {
	n := r.Buffered()
	if n == 0 {
		return nil
	}
	b, _ := r.Peek(n)
	return append([]byte(nil), b...)
}

// pump writes first, then copies src to dst. TCP on both ends goes through
// io.Copy, which splices in the kernel.
func pump(dst, src net.Conn, first []byte) int64 {
	var n int64
	if len(first) > 0 {
		w, err := dst.Write(first)
		n += int64(w)
		if err != nil {
			return n
		}
	}
	_, dstTCP := dst.(*net.TCPConn)
	_, srcTCP := src.(*net.TCPConn)
	if dstTCP && srcTCP {
		w, _ := io.Copy(dst, src)
		return n + w
	}
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	w, _ := io.CopyBuffer(writerOnly{dst}, readerOnly{src}, *bp)
	return n + w
}

// writerOnly and readerOnly hide ReadFrom and WriteTo so that io.CopyBuffer
// uses the pooled buffer instead of allocating its own.
type (
	writerOnly struct{ io.Writer }
	readerOnly struct{ io.Reader }
)
