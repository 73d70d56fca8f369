// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
)

// greeter is a backend that greets every connection and counts them.
type greeter struct {
	ln       net.Listener
	accepted atomic.Int64
	conns    chan net.Conn
}

func newGreeter(t *testing.T) *greeter {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &greeter{ln: ln, conns: make(chan net.Conn, 100)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.accepted.Add(1)
			c.Write([]byte("* OK ready\r\n"))
			g.conns <- c
		}
	}()
	return g
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestWarmPoolFillsOnDemand(t *testing.T) {
	g := newGreeter(t)
	addr := g.ln.Addr().String()
	w := NewWarmPool(2)
	defer w.Close()
	if c := w.Take(addr); c != nil {
		t.Fatal("a new pool handed out a connection")
	}
	waitFor(t, "the pool to fill", func() bool { return w.Idle() == 2 })
	if n := g.accepted.Load(); n != 2 {
		t.Errorf("%d connections made for a pool of 2", n)
	}
	c := w.Take(addr)
	if c == nil {
		t.Fatal("a full pool handed out nothing")
	}
	defer c.Close()
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "* OK ready\r\n" {
		t.Errorf("a warm connection reads %q, %v", line, err)
	}
	waitFor(t, "the pool to refill", func() bool { return w.Idle() == 2 })
	if n := g.accepted.Load(); n != 3 {
		t.Errorf("%d connections after one taken, want 3", n)
	}
	// Another address has a pool of its own.
	g2 := newGreeter(t)
	if w.Take(g2.ln.Addr().String()) != nil {
		t.Error("an address nobody asked for had a connection")
	}
}

// A connection the backend closed while it waited is not handed out.
func TestWarmPoolDropsClosed(t *testing.T) {
	g := newGreeter(t)
	addr := g.ln.Addr().String()
	w := NewWarmPool(1)
	defer w.Close()
	w.Take(addr)
	waitFor(t, "the pool to fill", func() bool { return w.Idle() == 1 })
	backendSide := <-g.conns
	backendSide.Write([]byte("* BYE going away\r\n"))
	backendSide.Close()
	waitFor(t, "the FIN to arrive", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.idle[addr]) == 1 && !established(w.idle[addr][0].conn)
	})
	if c := w.Take(addr); c != nil {
		c.Close()
		t.Fatal("a connection the backend closed was handed out")
	}
}

// Unused connections are closed after MaxIdle and not replaced; size 0
// and Close empty the pool.
func TestWarmPoolExpiresAndShrinks(t *testing.T) {
	g := newGreeter(t)
	addr := g.ln.Addr().String()
	w := NewWarmPool(2)
	w.MaxIdle = 100 * time.Millisecond
	w.Take(addr)
	waitFor(t, "the pool to fill", func() bool { return w.Idle() == 2 })
	waitFor(t, "the connections to expire", func() bool { return w.Idle() == 0 })
	time.Sleep(200 * time.Millisecond)
	if n := g.accepted.Load(); n != 2 {
		t.Errorf("%d connections made; expired ones must not be replaced", n)
	}
	for i := 0; i < 2; i++ {
		c := <-g.conns
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("an expired connection is still open")
		}
	}

	w.MaxIdle = time.Minute
	w.Take(addr)
	waitFor(t, "the pool to fill again", func() bool { return w.Idle() == 2 })
	w.SetSize(1)
	if n := w.Idle(); n != 1 {
		t.Errorf("size 1: %d idle", n)
	}
	w.Close()
	if n := w.Idle(); n != 0 {
		t.Errorf("closed: %d idle", n)
	}
	if w.Take(addr) != nil {
		t.Error("a closed pool handed out a connection")
	}
	var none *WarmPool
	if none.Take(addr) != nil || none.Idle() != 0 {
		t.Error("a nil pool")
	}
}

func TestRetryFreshClassifies(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{auth.Temporary("backend: greeting", ErrBackendClosed), true},
		{auth.Temporary("backend: login", &net.OpError{Op: "read", Err: syscall.ECONNRESET}), true},
		{auth.Temporary("backend: login", errors.New(`backend said -ERR [SYS/TEMP] Internal error occurred.`)), true},
		{&Refused{Status: auth.StatusPasswordMismatch}, false},
		{auth.Temporary("backend: login", fmt.Errorf("backend said: %w", &LimitError{Text: "too many"})), false},
		{auth.Temporary("backend: login", fmt.Errorf("backend said NO [INUSE]: %w", ErrInUse)), false},
		{auth.Internal("backend", errors.New("does not offer AUTH=PLAIN")), false},
	} {
		if got := retryFresh(tc.err); got != tc.want {
			t.Errorf("retryFresh(%v) = %v", tc.err, got)
		}
	}
}
