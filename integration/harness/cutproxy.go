// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// CutProxy is a TCP proxy on loopback in front of one target (an etcd
// member, say), through which a test cuts one client off and lets it back:
//
//   - Cut: every open connection is closed; new connections are accepted
//     and held, nothing forwarded, so the client sees timeouts, as behind
//     a firewall that drops packets.
//   - Stall: open connections stay open but nothing more is forwarded
//     either way; new connections are held as with Cut: a network
//     partition, which only timeouts and keepalives detect.
//   - Refuse: every open and held connection is closed and the listener
//     too, so that connecting fails at once (connection refused).
//   - Restore: forwarding again. Held connections are forwarded now (as a
//     retransmitted SYN gets through once a partition heals), stalled
//     ones resume with the bytes they had queued, the listener is opened
//     again on the same address after Refuse.
//
// Each forwarded connection gets its own connection to the target and is
// copied both ways, half-closes included, so it carries anything: gRPC's
// long-lived HTTP/2 streams, IMAP sessions.
type CutProxy struct {
	t      testing.TB
	target string
	addr   string

	mu     sync.Mutex
	mode   proxyMode
	ln     net.Listener
	open   chan struct{} // closed while mode is forwarding
	links  map[*proxyLink]struct{}
	held   map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

type proxyMode int

const (
	proxyForward proxyMode = iota
	proxyCut
	proxyStall
	proxyRefuse
)

// proxyLink is one forwarded connection: the client's and ours to the
// target.
type proxyLink struct {
	client, server net.Conn
	done           chan struct{}
	once           sync.Once
}

func (l *proxyLink) close() {
	l.once.Do(func() {
		close(l.done)
		l.client.Close()
		l.server.Close()
	})
}

// NewCutProxy starts a proxy to target (host:port) on 127.0.0.1, on a port
// of the kernel's choosing; it forwards until told otherwise and is closed
// when the test ends.
func NewCutProxy(t testing.TB, target string) *CutProxy {
	t.Helper()
	return NewCutProxyOn(t, "127.0.0.1:0", target)
}

// NewCutProxyOn is NewCutProxy listening on listen (ip:port; port 0 picks
// one).
func NewCutProxyOn(t testing.TB, listen, target string) *CutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("cut proxy: %v", err)
	}
	p := &CutProxy{
		t: t, target: target, addr: ln.Addr().String(), ln: ln,
		open:  make(chan struct{}),
		links: map[*proxyLink]struct{}{},
		held:  map[net.Conn]struct{}{},
	}
	close(p.open)
	p.wg.Add(1)
	go p.acceptLoop(ln)
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's address, ip:port, to give the client instead
// of the target's.
func (p *CutProxy) Addr() string { return p.addr }

// Target returns the address the proxy forwards to.
func (p *CutProxy) Target() string { return p.target }

// Active returns the number of forwarded connections open now.
func (p *CutProxy) Active() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.links)
}

// Held returns the number of connections accepted and held (not forwarded)
// while cut or stalled.
func (p *CutProxy) Held() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held)
}

// Cut closes every forwarded connection and holds new ones without
// forwarding them: the client sees its connections drop, then timeouts.
func (p *CutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leaveForward(proxyCut)
	p.closeLinks()
}

// Stall stops forwarding without closing anything: open connections go
// silent both ways, new ones are held.
func (p *CutProxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leaveForward(proxyStall)
}

// Refuse closes every connection, held ones included, and the listener:
// connecting to Addr fails with "connection refused" until Restore.
func (p *CutProxy) Refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.leaveForward(proxyRefuse)
	p.closeLinks()
	for c := range p.held {
		c.Close()
		delete(p.held, c)
	}
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
}

// Restore forwards again: held connections are forwarded now, stalled ones
// resume, and after Refuse the listener is opened again on the same
// address (a failure to do so fails the test).
func (p *CutProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.mode == proxyForward {
		return
	}
	if p.ln == nil {
		// The port was ours a moment ago; another process taking it in
		// between is unlikely, but a TIME_WAIT may need a moment.
		var err error
		for try := 0; try < 50; try++ {
			var ln net.Listener
			if ln, err = net.Listen("tcp", p.addr); err == nil {
				p.ln = ln
				p.wg.Add(1)
				go p.acceptLoop(ln)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			p.t.Errorf("cut proxy %s: listen again: %v", p.addr, err)
		}
	}
	p.mode = proxyForward
	close(p.open)
	for c := range p.held {
		delete(p.held, c)
		p.wg.Add(1)
		go p.forward(c)
	}
}

// Close stops the proxy and closes every connection.
func (p *CutProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	if p.mode == proxyForward {
		p.open = make(chan struct{}) // never closed again: stalled copies wait for done
	}
	p.mode = proxyRefuse
	p.closeLinks()
	for c := range p.held {
		c.Close()
		delete(p.held, c)
	}
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// leaveForward switches to mode m; p.mu is held.
func (p *CutProxy) leaveForward(m proxyMode) {
	if p.closed {
		return
	}
	if p.mode == proxyForward {
		p.open = make(chan struct{})
	}
	p.mode = m
}

// closeLinks closes every forwarded connection; p.mu is held.
func (p *CutProxy) closeLinks() {
	for l := range p.links {
		l.close()
		delete(p.links, l)
	}
}

func (p *CutProxy) acceptLoop(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return // closed by Refuse or Close
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
			continue
		}
		p.mu.Lock()
		switch {
		case p.closed || p.ln != ln:
			c.Close()
		case p.mode == proxyForward:
			p.wg.Add(1)
			go p.forward(c)
		default: // cut or stalled: hold it, unanswered
			p.held[c] = struct{}{}
		}
		p.mu.Unlock()
	}
}

// forward connects c to the target and copies both ways until either side
// closes or the proxy closes the link.
func (p *CutProxy) forward(c net.Conn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	l := &proxyLink{client: c, server: s, done: make(chan struct{})}
	p.mu.Lock()
	if p.mode != proxyForward {
		// cut while we dialled
		p.mu.Unlock()
		l.close()
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.pipe(l, s, c) }()
	go func() { defer both.Done(); p.pipe(l, c, s) }()
	both.Wait()
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// pipe copies src to dst, waiting at each chunk while the proxy does not
// forward. At src's end it half-closes dst; at an error it closes the link.
func (p *CutProxy) pipe(l *proxyLink, dst, src net.Conn) {
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitForward(l) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				l.close()
				return
			}
		}
		if err != nil {
			if err == io.EOF {
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.CloseWrite()
					return
				}
			}
			l.close()
			return
		}
	}
}

// waitForward returns true once the proxy forwards, false when the link
// is closed first.
func (p *CutProxy) waitForward(l *proxyLink) bool {
	for {
		p.mu.Lock()
		fwd, open := p.mode == proxyForward, p.open
		p.mu.Unlock()
		if fwd {
			return true
		}
		select {
		case <-open:
		case <-l.done:
			return false
		}
	}
}
