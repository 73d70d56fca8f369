// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"net"
	"sync"
	"time"
)

// WarmPool keeps a few connections to each backend address dialled ahead
// of need, their greeting on its way or already arrived, so that a login
// finds its backend connection ready instead of connecting and waiting for
// the greeting while the client waits: two steps off every login's path
// (the connect's round trip and the backend's login process answering).
// The work is the same; it is done while the gateway waits for something
// else. Dovecot's own proxy has no such pool.
//
// The pool fills on demand: a login that takes a connection (or finds
// none) starts one dial to replace it, up to the pool's size per address,
// so a quiet gateway holds nothing and a backend nobody is sent to gets no
// connections. A connection unused for MaxIdle is closed, well before a
// backend would time out a client that never logged in; Dovecot logs it
// as a disconnection without an authentication attempt. A connection the
// backend closed meanwhile (restart, crash) is seen before it is handed
// out (the socket's TCP state) and dropped.
//
// Only plain connections are kept: a PROXY header carries the client's
// address and must be the connection's first bytes, and implicit TLS
// verifies per login what the passdb named.
type WarmPool struct {
	// MaxIdle is how long a connection waits to be used (default 10 s).
	MaxIdle time.Duration
	// Dial connects to an address (default: TCP with the gateway's
	// keep-alive; no retries: a failed warm-up is only a lost head start).
	Dial func(ctx context.Context, addr string) (net.Conn, error)

	mu      sync.Mutex
	size    int
	closed  bool
	idle    map[string][]*warmConn
	dialing map[string]int
}

type warmConn struct {
	conn  net.Conn
	timer *time.Timer
}

// NewWarmPool returns a pool of size connections per address (0: none).
func NewWarmPool(size int) *WarmPool {
	return &WarmPool{size: size, idle: map[string][]*warmConn{}, dialing: map[string]int{}}
}

// SetSize changes the number kept per address (a reload); extra idle
// connections go at once.
func (w *WarmPool) SetSize(n int) {
	w.mu.Lock()
	w.size = n
	var extra []*warmConn
	for addr, list := range w.idle {
		if len(list) > n {
			extra = append(extra, list[n:]...)
			w.idle[addr] = list[:n]
		}
	}
	w.mu.Unlock()
	for _, wc := range extra {
		wc.timer.Stop()
		wc.conn.Close()
	}
}

// Take returns a warm connection to addr, or nil, and starts a dial to
// keep the pool full.
func (w *WarmPool) Take(addr string) net.Conn {
	if w == nil {
		return nil
	}
	for {
		w.mu.Lock()
		if w.closed || w.size == 0 {
			w.mu.Unlock()
			return nil
		}
		var wc *warmConn
		if list := w.idle[addr]; len(list) > 0 {
			wc = list[len(list)-1]
			w.idle[addr] = list[:len(list)-1]
			if !wc.timer.Stop() {
				// Its expiry is running and will find it gone.
				wc = nil
			}
		}
		w.refillLocked(addr)
		w.mu.Unlock()
		if wc == nil {
			return nil
		}
		if established(wc.conn) {
			return wc.conn
		}
		wc.conn.Close()
	}
}

// refillLocked starts dials until idle plus dialing reaches the size.
func (w *WarmPool) refillLocked(addr string) {
	for len(w.idle[addr])+w.dialing[addr] < w.size {
		w.dialing[addr]++
		go w.dial(addr)
	}
}

func (w *WarmPool) dial(addr string) {
	maxIdle := w.MaxIdle
	if maxIdle <= 0 {
		maxIdle = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), maxIdle)
	dial := w.Dial
	if dial == nil {
		d := net.Dialer{KeepAliveConfig: keepAlive()}
		dial = func(ctx context.Context, addr string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) }
	}
	conn, err := dial(ctx, addr)
	cancel()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dialing[addr]--
	if w.dialing[addr] == 0 {
		delete(w.dialing, addr)
	}
	if err != nil {
		return
	}
	if w.closed || len(w.idle[addr]) >= w.size {
		conn.Close()
		return
	}
	wc := &warmConn{conn: conn}
	wc.timer = time.AfterFunc(maxIdle, func() { w.expire(addr, wc) })
	w.idle[addr] = append(w.idle[addr], wc)
}

// expire closes wc if it is still waiting.
func (w *WarmPool) expire(addr string, wc *warmConn) {
	w.mu.Lock()
	list := w.idle[addr]
	for i, x := range list {
		if x == wc {
			w.idle[addr] = append(list[:i:i], list[i+1:]...)
			break
		}
	}
	if len(w.idle[addr]) == 0 {
		delete(w.idle, addr)
	}
	w.mu.Unlock()
	wc.conn.Close()
}

// Idle returns how many connections wait, over all addresses.
func (w *WarmPool) Idle() int {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, list := range w.idle {
		n += len(list)
	}
	return n
}

// Close closes the waiting connections and keeps no more.
func (w *WarmPool) Close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	w.closed = true
	idle := w.idle
	w.idle = map[string][]*warmConn{}
	w.mu.Unlock()
	for _, list := range idle {
		for _, wc := range list {
			wc.timer.Stop()
			wc.conn.Close()
		}
	}
}
