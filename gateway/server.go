// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TLSMode says how a listener offers TLS.
type TLSMode int

const (
	TLSNone     TLSMode = iota // cleartext only
	TLSStartTLS                // cleartext, upgraded by STARTTLS
	TLSImplicit                // TLS from the first byte (imaps)
)

// Handler speaks one protocol to a client. Serve returns when the client's
// session is over; the server closes the connection afterwards.
type Handler interface {
	Serve(ctx context.Context, c *ClientConn)
}

// Listener is one listening address and the policy for its clients.
type Listener struct {
	Protocol string // the service: "imap", "pop3", "sieve", "lmtp"
	// Address is "IP:port", or a UNIX socket's path (starting with "/").
	Address   string
	Mode      os.FileMode // a UNIX socket's permissions
	TLSMode   TLSMode
	TLSConfig *tls.Config
	// Allow limits who may connect (nil: anyone).
	Allow []netip.Prefix
	// HAProxy: clients are load balancers in HAProxyTrusted that send a
	// PROXY v1/v2 header first; anybody else is refused.
	HAProxy        bool
	HAProxyTrusted []netip.Prefix
	HAProxyTimeout time.Duration
	// Trusted networks may forward client addresses (IMAP ID) and count
	// as secured (Dovecot's login_trusted_networks).
	Trusted []netip.Prefix
	// AllowPlaintext permits plaintext authentication on cleartext
	// connections that are not otherwise secured.
	AllowPlaintext bool
	Handler        Handler

	sock *socket // bound by Server.Start or Server.Apply
	// using counts connections this Listener accepted that still log in
	// (or, for LMTP, are open): they use its handler's databases.
	using atomic.Int64
}

// InUse returns how many connections accepted by this listener still use
// its configuration's databases (before login, or LMTP): once a reload
// replaced it and this is 0, that configuration's databases may close.
func (l *Listener) InUse() int64 { return l.using.Load() }

// socket is a bound address. It outlives the Listener that bound it: a
// reload hands it to the new Listener for the same protocol and address,
// so the address is never closed and connections accepted from then on
// get the new policy (certificates, handler, networks).
type socket struct {
	ln  net.Listener
	cur atomic.Pointer[Listener]
	// prelogin counts the socket's connections that are not (yet)
	// relayed sessions, whichever Listener accepted them.
	prelogin atomic.Int64
}

// key identifies a listener's socket across reloads.
func (l *Listener) key() string { return l.Protocol + " " + l.Address }

// Prelogin returns how many of the listener's connections are before
// login (or, for LMTP, open at all).
func (l *Listener) Prelogin() int64 {
	if l.sock == nil {
		return 0
	}
	return l.sock.prelogin.Load()
}

func (l *Listener) trusted(a netip.Addr) bool { return contains(l.Trusted, a) }

func contains(prefixes []netip.Prefix, a netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// unix reports whether the listener is a UNIX socket.
func (l *Listener) unix() bool { return strings.HasPrefix(l.Address, "/") }

// Addr returns the bound address (useful with port 0), nil before Start.
func (l *Listener) Addr() net.Addr {
	if l.sock == nil {
		return nil
	}
	return l.sock.ln.Addr()
}

// Limits bound clients before login.
type Limits struct {
	LoginTimeout time.Duration // time allowed from connect to logged in (PROXY header and TLS handshake included)
	MaxLine      int           // longest command line
	// MaxPrelogin bounds the IMAP, POP3 and ManageSieve connections that
	// have not logged in, all listeners together, and MaxPreloginPerIP
	// those of one client address (0: no bound). PreloginExempt are
	// addresses not bounded per address (trusted proxies).
	MaxPrelogin, MaxPreloginPerIP int
	PreloginExempt                []netip.Prefix
}

// Server accepts clients on its listeners and hands them to handlers.
// Apply replaces the listeners (and Limits) while it runs.
type Server struct {
	// Listeners and Limits are the initial configuration: set them before
	// Start; Apply changes them afterwards.
	Listeners []*Listener
	Limits    Limits
	Log       *slog.Logger

	mu      sync.Mutex
	conns   map[net.Conn]*connState
	wg      sync.WaitGroup
	closed  bool
	sockets map[string]*socket
	current []*Listener
	limits  Limits
	// serveCtx is Serve's context (nil before Serve): sockets bound by
	// Apply start accepting under it.
	serveCtx context.Context
	accepts  sync.WaitGroup
	stopped  chan struct{}
	self     atomic.Pointer[[]netip.AddrPort]
	prelogin *preloginTable
}

// SelfAddrs returns the TCP addresses the server listens on now (for
// proxy loop detection: Pipeline.SelfAddrs).
func (s *Server) SelfAddrs() []netip.AddrPort {
	if p := s.self.Load(); p != nil {
		return *p
	}
	return nil
}

// updateSelfLocked recomputes SelfAddrs from the bound sockets.
func (s *Server) updateSelfLocked() {
	var out []netip.AddrPort
	for _, sock := range s.sockets {
		if ta, ok := sock.ln.Addr().(*net.TCPAddr); ok {
			ap := ta.AddrPort()
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
	s.self.Store(&out)
}

// connState is what Shutdown needs to know of a connection.
type connState struct {
	// busy marks a stretch that must be let finish when the gateway stops
	// (an LMTP DATA whose backends may already have delivered).
	busy atomic.Bool

	mu  sync.Mutex
	cut bool
	// extra is closed with the connection (CloseOnCut): a slice, not a
	// map, as it holds one or two, for the whole of a relayed session.
	extra []io.Closer
}

// closeOnCut registers x; the returned func forgets it.
func (st *connState) closeOnCut(x io.Closer) (forget func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.cut {
		x.Close()
		return func() {}
	}
	st.extra = append(st.extra, x)
	return func() {
		st.mu.Lock()
		if i := slices.Index(st.extra, x); i >= 0 {
			st.extra = slices.Delete(st.extra, i, i+1)
		}
		st.mu.Unlock()
	}
}

// cutAll closes what was registered, and from now on closes at once.
func (st *connState) cutAll() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.cut = true
	for _, x := range st.extra {
		x.Close()
	}
	st.extra = nil
}

// Start binds every listener; on failure nothing stays bound.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = map[net.Conn]*connState{}
	s.sockets = map[string]*socket{}
	s.stopped = make(chan struct{})
	s.limits = s.Limits
	s.prelogin = newPreloginTable(s.Limits.MaxPrelogin, s.Limits.MaxPreloginPerIP, s.Limits.PreloginExempt)
	bound, err := s.bindLocked(s.Listeners)
	if err != nil {
		return err
	}
	for _, l := range s.Listeners {
		l.sock = bound[l.key()]
		l.sock.cur.Store(l)
		s.Log.Info("listening", "service", l.Protocol, "address", l.sock.ln.Addr().String(), "tls", tlsModeName(l.TLSMode))
	}
	s.sockets, s.current = bound, s.Listeners
	s.updateSelfLocked()
	return nil
}

// bindLocked gives every listener of ls a socket: the one already bound
// for its protocol and address, or a new one. On failure the new sockets
// are closed again and the old ones are untouched. It returns the
// sockets by key.
func (s *Server) bindLocked(ls []*Listener) (map[string]*socket, error) {
	out := map[string]*socket{}
	var fresh []*socket
	for _, l := range ls {
		k := l.key()
		if _, dup := out[k]; dup {
			closeSockets(fresh)
			return nil, fmt.Errorf("listen %s %s: listed twice", l.Protocol, l.Address)
		}
		if old := s.sockets[k]; old != nil {
			out[k] = old
			continue
		}
		if l.unix() {
			// A path a running listener of another protocol serves:
			// binding it would unlink that listener's socket file.
			for ok, old := range s.sockets {
				if old.ln.Addr().String() == l.Address {
					closeSockets(fresh)
					return nil, fmt.Errorf("listen %s %s: the socket serves %s now; changing its protocol needs a restart", l.Protocol, l.Address, strings.Fields(ok)[0])
				}
			}
		}
		ln, err := listen(l)
		if err != nil {
			closeSockets(fresh)
			return nil, fmt.Errorf("listen %s %s: %w", l.Protocol, l.Address, err)
		}
		sock := &socket{ln: ln}
		fresh = append(fresh, sock)
		out[k] = sock
	}
	return out, nil
}

func closeSockets(socks []*socket) {
	for _, sock := range socks {
		sock.ln.Close()
	}
}

// Apply replaces the listeners and limits of a running server, as a
// reload does: addresses that stay keep their socket (nothing is
// refused meanwhile) and accept new connections with the new policy;
// new addresses are bound; addresses that went are closed. Connections
// already open — pre-login, relayed or delivering — are not touched:
// they finish under the configuration they started with. On error
// (an address that cannot be bound) nothing changes.
func (s *Server) Apply(ls []*Listener, limits Limits) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("server is shut down")
	}
	if s.stopped == nil {
		// A reload that comes through the admin doors while serve is
		// still starting: Start binds the configuration it was given.
		return errors.New("server is not started yet; reload again")
	}
	bound, err := s.bindLocked(ls)
	if err != nil {
		return err
	}
	for k, sock := range s.sockets {
		if _, stays := bound[k]; !stays {
			// Closing ends its accept loop; its connections go on.
			sock.ln.Close()
			s.Log.Info("listener closed", "address", sock.ln.Addr().String())
		}
	}
	for _, l := range ls {
		sock := bound[l.key()]
		l.sock = sock
		prev := sock.cur.Swap(l)
		if l.unix() && l.Mode != 0 && (prev == nil || prev.Mode != l.Mode) {
			if err := os.Chmod(l.Address, l.Mode); err != nil {
				s.Log.Warn("socket mode not changed", "address", l.Address, "reason", err)
			}
		}
		if prev == nil {
			s.Log.Info("listening", "service", l.Protocol, "address", sock.ln.Addr().String(), "tls", tlsModeName(l.TLSMode))
			if s.serveCtx != nil {
				s.startAcceptLocked(sock)
			}
		}
	}
	s.sockets, s.current, s.limits = bound, ls, limits
	s.prelogin.setBounds(limits.MaxPrelogin, limits.MaxPreloginPerIP, limits.PreloginExempt)
	s.updateSelfLocked()
	return nil
}

// Current returns the listeners in use now.
func (s *Server) Current() []*Listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Listener(nil), s.current...)
}

func (s *Server) startAcceptLocked(sock *socket) {
	s.accepts.Add(1)
	go func() {
		defer s.accepts.Done()
		s.accept(s.serveCtx, sock)
	}()
}

// listen binds a TCP address or a UNIX socket (a stale socket file left
// by an earlier run is replaced; anything else at the path is an error).
func listen(l *Listener) (net.Listener, error) {
	if !l.unix() {
		lc := net.ListenConfig{KeepAliveConfig: keepAlive()}
		return lc.Listen(context.Background(), "tcp", l.Address)
	}
	if fi, err := os.Lstat(l.Address); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", l.Address)
		}
		os.Remove(l.Address)
	}
	ln, err := net.Listen("unix", l.Address)
	if err != nil {
		return nil, err
	}
	mode := l.Mode
	if mode == 0 {
		mode = 0o660
	}
	if err := os.Chmod(l.Address, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

func tlsModeName(m TLSMode) string {
	return [...]string{"none", "starttls", "implicit"}[m]
}

// Serve accepts connections until Close or Shutdown is called (sockets
// Apply binds included), then waits for its accept loops to end.
func (s *Server) Serve(ctx context.Context) {
	s.mu.Lock()
	s.serveCtx = ctx
	for _, sock := range s.sockets {
		s.startAcceptLocked(sock)
	}
	stopped := s.stopped
	s.mu.Unlock()
	<-stopped
	s.accepts.Wait()
}

func (s *Server) accept(ctx context.Context, sock *socket) {
	var delay time.Duration
	for {
		c, err := sock.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, keep going.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.Log.Warn("accept failed", "reason", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		st, limits := s.track(c)
		if st == nil {
			c.Close()
			return
		}
		// Counted before the handler runs, so that a reload that swaps
		// the listener now still sees this connection as the old
		// generation's (and keeps its databases open for it).
		l := sock.cur.Load()
		l.sock.prelogin.Add(1)
		l.using.Add(1)
		go s.handle(ctx, l, c, st, limits)
	}
}

// track registers c and counts its handler (under the lock, so that
// Shutdown's Wait never races an Add); nil means the server is closing.
func (s *Server) track(c net.Conn) (*connState, Limits) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, Limits{}
	}
	st := &connState{}
	s.conns[c] = st
	s.wg.Add(1)
	return st, s.limits
}

func (s *Server) handle(ctx context.Context, l *Listener, c net.Conn, st *connState, limits Limits) {
	// end forgets the connection (by the accepted conn, its key in
	// s.conns: c becomes the PROXY-header or TLS conn on the way), closes
	// it and counts the handler out: when the handler returns, or, for a
	// session the relay took over (ClientConn.handOff), once that is
	// over, so that this goroutine and its stack need not wait through
	// the session.
	accepted := c
	end := func() {
		s.mu.Lock()
		delete(s.conns, accepted)
		s.mu.Unlock()
		c.Close()
		s.wg.Done()
	}
	h := &handoff{done: end}
	defer func() {
		if !h.taken {
			end()
		}
	}()
	// The connection counts as pre-login (counted by accept) until its
	// ClientConn leaves that state (a relayed session) or it ends.
	var cc *ClientConn
	defer func() {
		if cc == nil {
			l.sock.prelogin.Add(-1)
			l.using.Add(-1)
		} else {
			cc.leavePrelogin()
		}
	}()
	defer func() {
		// A bug in one session must not take the gateway down.
		if r := recover(); r != nil {
			s.Log.Error("panic in session", "service", l.Protocol, "reason", fmt.Sprint(r), "stack", string(debug.Stack()))
		}
	}()
	deadline := deadlineFrom(time.Now(), limits)
	peer, local := addrPort(c.RemoteAddr()), addrPort(c.LocalAddr())
	log := s.Log.With("service", l.Protocol, "remote", peer.String())
	if !l.unix() && l.Allow != nil && !contains(l.Allow, peer.Addr()) {
		log.Info("connection refused: not in allow_networks")
		return
	}
	var lbTLS bool
	if l.HAProxy {
		if !contains(l.HAProxyTrusted, peer.Addr()) {
			log.Info("connection refused: PROXY protocol listener, peer not in haproxy_trusted_networks")
			return
		}
		conn, info, err := readProxyHeader(c, l.HAProxyTimeout)
		if err != nil {
			log.Info("connection refused", "reason", err)
			return
		}
		c, peer, local, lbTLS = conn, info.remote, info.local, info.tls
	}
	// LMTP clients are MTAs delivering and doveadm clients administrators,
	// not logins waiting: they are not bounded with them (and an LMTP
	// transaction or a doveadm command is never cut for room).
	var entry *preloginEntry
	table := s.prelogin
	if l.Protocol != "lmtp" && l.Protocol != "doveadm" && table != nil {
		if entry = table.admit(c, peer.Addr()); entry == nil {
			log.Debug("connection refused: pre-login connections full, none idle to make room")
			return
		}
		defer table.leave(entry)
	}
	if l.TLSMode == TLSImplicit {
		tc := tls.Server(c, l.TLSConfig)
		c.SetDeadline(deadline)
		if err := tc.HandshakeContext(ctx); err != nil {
			log.Info("TLS handshake failed", "reason", err)
			return
		}
		c = tc
	}
	cc = newClientConn(c, l, s.Log, limits.MaxLine, deadline, peer, local)
	cc.state = st
	cc.prelogin, cc.using = &l.sock.prelogin, &l.using
	if entry != nil {
		cc.plEntry, cc.plTable = entry, table
	}
	cc.TLS = cc.TLS || lbTLS
	cc.handoff = h
	l.Handler.Serve(ctx, cc)
}

// Close stops accepting, closes every client connection (relayed sessions
// included) and waits for their handlers to return.
func (s *Server) Close() { s.Shutdown(0) }

// Shutdown stops accepting and closes every client connection at once,
// except those marked busy (ClientConn.SetBusy): they get up to grace to
// finish, then are closed too. It returns when every handler has.
//
// Relayed IMAP/POP3/ManageSieve sessions are cut at once, as Dovecot's
// shutdown_clients does: their clients reconnect and nothing is lost. An
// LMTP delivery whose message has gone to the backends is different —
// cutting it after a backend delivered but before the client heard 250
// makes the client deliver again — so it is let finish.
func (s *Server) Shutdown(grace time.Duration) {
	s.mu.Lock()
	wasClosed := s.closed
	s.closed = true
	for _, sock := range s.sockets {
		sock.ln.Close()
	}
	if !wasClosed && s.stopped != nil {
		close(s.stopped)
	}
	s.mu.Unlock()
	s.mu.Lock()
	busy := 0
	for c, st := range s.conns {
		if grace > 0 && st.busy.Load() {
			busy++
			continue
		}
		c.Close()
		st.cutAll()
	}
	s.mu.Unlock()
	if busy > 0 {
		s.Log.Info("shutting down: letting deliveries in progress finish", "connections", busy, "grace", grace)
		done := make(chan struct{})
		go func() {
			s.wg.Wait()
			close(done)
		}()
		select {
		case <-done:
			return
		case <-time.After(grace):
		}
		s.mu.Lock()
		for c, st := range s.conns {
			c.Close()
			st.cutAll()
		}
		s.mu.Unlock()
	}
	s.wg.Wait()
}
