// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirector/maildirector/internal/testtls"
)

// genHandler greets with its generation's name, then echoes every line
// prefixed with it: a reply tells which configuration a connection got.
type genHandler struct{ gen string }

func (h genHandler) Serve(_ context.Context, c *ClientConn) {
	if c.Printf("%s", h.gen) != nil {
		return
	}
	for {
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		if c.Printf("%s %s", h.gen, line) != nil {
			return
		}
	}
}

// lineConn is a client of genHandler.
type lineConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

func dialGen(t testing.TB, addr string, tc *tls.Config) *lineConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	if tc != nil {
		c = tls.Client(c, tc)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &lineConn{t: t, c: c, r: bufio.NewReader(c)}
}

// expectBanner reads the greeting and fails unless it is gen's.
func (lc *lineConn) expectBanner(gen string) {
	lc.t.Helper()
	if got := lc.read(); got != gen {
		lc.t.Fatalf("banner %q, want %q", got, gen)
	}
}

func (lc *lineConn) read() string {
	lc.t.Helper()
	s, err := lc.r.ReadString('\n')
	if err != nil {
		lc.t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

// echo sends line and fails unless gen's handler echoes it.
func (lc *lineConn) echo(gen, line string) {
	lc.t.Helper()
	if _, err := io.WriteString(lc.c, line+"\r\n"); err != nil {
		lc.t.Fatalf("write: %v", err)
	}
	if got, want := lc.read(), gen+" "+line; got != want {
		lc.t.Fatalf("echo %q, want %q", got, want)
	}
}

// expectClosed fails unless the server ends the connection.
func (lc *lineConn) expectClosed() {
	lc.t.Helper()
	s, err := lc.r.ReadString('\n')
	if err == nil {
		lc.t.Fatalf("connection still open: read %q", s)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		lc.t.Fatal("connection still open: read timed out")
	}
}

// expectRefused fails unless nothing listens on addr.
func expectRefused(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
}

// freeAddr returns a loopback address nobody listens on (just now).
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitCount waits (briefly) until count() is want: a connection is
// counted until its handler is quite done, a moment after its close.
func waitCount(t testing.TB, what string, count func() int64, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for count() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", what, count(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

var testLimits = Limits{LoginTimeout: time.Minute, MaxLine: 1024}

// startApplyServer runs a Server on ls and returns it and a func that
// waits for Serve to return.
func startApplyServer(t *testing.T, ls ...*Listener) (*Server, func()) {
	t.Helper()
	s := &Server{Listeners: ls, Limits: testLimits, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(context.Background()); close(done) }()
	t.Cleanup(func() { s.Close(); <-done })
	return s, func() {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return after Shutdown")
		}
	}
}

// TestApply replaces a running server's listeners three times: a kept
// address takes the new handler for new connections only, an added one
// accepts, a removed one refuses, and an address that cannot be bound
// changes nothing at all. Open connections live through every Apply.
func TestApply(t *testing.T) {
	// Sockets are kept by protocol and configured address, so two
	// port-0 listeners need different protocols.
	a1 := &Listener{Protocol: "imap", Address: "127.0.0.1:0", Handler: genHandler{"gen1"}}
	s, served := startApplyServer(t, a1)
	addrA := a1.Addr().String()

	c1 := dialGen(t, addrA, nil)
	c1.expectBanner("gen1")
	c1.echo("gen1", "hello")
	if n := a1.Prelogin(); n != 1 {
		t.Errorf("Prelogin = %d, want 1", n)
	}

	// Same address with a new handler and a smaller line limit, plus a
	// new address.
	a2 := &Listener{Protocol: "imap", Address: "127.0.0.1:0", Handler: genHandler{"gen2"}}
	b := &Listener{Protocol: "pop3", Address: "127.0.0.1:0", Handler: genHandler{"genB"}}
	if err := s.Apply([]*Listener{a2, b}, Limits{LoginTimeout: time.Minute, MaxLine: 16}); err != nil {
		t.Fatal(err)
	}
	if got := a2.Addr().String(); got != addrA {
		t.Fatalf("kept listener moved from %s to %s", addrA, got)
	}
	if cur := s.Current(); len(cur) != 2 || cur[0] != a2 || cur[1] != b {
		t.Fatalf("Current() = %v, want [a2 b]", cur)
	}
	long := strings.Repeat("x", 100)
	// c1 keeps its handler and its limits.
	c1.echo("gen1", "still here")
	c1.echo("gen1", long)
	c2 := dialGen(t, addrA, nil)
	c2.expectBanner("gen2")
	c2.echo("gen2", "hi")
	// cb lives under the 16-byte line limit: short lines only.
	cb := dialGen(t, b.Addr().String(), nil)
	cb.expectBanner("genB")
	cb.echo("genB", "hi")
	// The new line limit holds for new connections.
	cl := dialGen(t, addrA, nil)
	cl.expectBanner("gen2")
	io.WriteString(cl.c, long+"\r\n")
	cl.expectClosed()
	// Prelogin belongs to the address, whichever Listener accepted;
	// InUse to the Listener (its generation's databases).
	waitCount(t, "Prelogin", a1.Prelogin, 2)
	if n := a2.Prelogin(); n != 2 {
		t.Errorf("new Listener's Prelogin = %d, want 2 (c1, c2)", n)
	}
	waitCount(t, "new Listener's InUse", a2.InUse, 1)
	if n := a1.InUse(); n != 1 {
		t.Errorf("old Listener's InUse = %d, want 1 (c1)", n)
	}
	if n := b.Prelogin(); n != 1 {
		t.Errorf("B Prelogin = %d, want 1", n)
	}

	// Only B stays.
	if err := s.Apply([]*Listener{b}, testLimits); err != nil {
		t.Fatal(err)
	}
	expectRefused(t, addrA)
	c1.echo("gen1", "after removal")
	c2.echo("gen2", "after removal")
	cb.echo("genB", "removal")

	// An address taken by somebody else: the whole Apply fails, the
	// fresh address bound before it is let go, and B keeps its handler.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	freshAddr := freeAddr(t)
	b2 := &Listener{Protocol: "pop3", Address: "127.0.0.1:0", Handler: genHandler{"genB2"}}
	fresh := &Listener{Protocol: "imap", Address: freshAddr, Handler: genHandler{"genF"}}
	clash := &Listener{Protocol: "imap", Address: taken.Addr().String(), Handler: genHandler{"genC"}}
	err = s.Apply([]*Listener{b2, fresh, clash}, Limits{LoginTimeout: time.Millisecond, MaxLine: 16})
	if err == nil || !strings.Contains(err.Error(), taken.Addr().String()) {
		t.Fatalf("Apply with a taken address: %v, want an error naming %s", err, taken.Addr())
	}
	if cur := s.Current(); len(cur) != 1 || cur[0] != b {
		t.Fatalf("Current() after a failed Apply = %v, want [b]", cur)
	}
	if b2.Addr() != nil || fresh.Addr() != nil {
		t.Error("a failed Apply left listeners bound")
	}
	expectRefused(t, freshAddr)
	// The old limits too: a 1ms login timeout would end this at once.
	cb2 := dialGen(t, b.Addr().String(), nil)
	cb2.expectBanner("genB")
	time.Sleep(20 * time.Millisecond)
	cb2.echo("genB", long)
	c1.echo("gen1", "after failed apply")

	// Listed twice is refused the same way.
	if err := s.Apply([]*Listener{b2, b2}, testLimits); err == nil {
		t.Error("Apply with one address listed twice succeeded")
	}
	cb.echo("genB", "dup")

	s.Shutdown(0)
	served()
	for _, lc := range []*lineConn{c1, c2, cb, cb2} {
		lc.expectClosed()
	}
	expectRefused(t, b.Addr().String())
	for _, l := range []*Listener{a1, a2, b} {
		if n, m := l.Prelogin(), l.InUse(); n != 0 || m != 0 {
			t.Errorf("%s: Prelogin/InUse after Shutdown = %d/%d, want 0/0", l.Protocol, n, m)
		}
	}
	if err := s.Apply([]*Listener{b2}, testLimits); err == nil {
		t.Error("Apply after Shutdown succeeded")
	}
}

// TestApplyBeforeServe: sockets bound by an Apply between Start and
// Serve accept once Serve runs.
func TestApplyBeforeServe(t *testing.T) {
	a := &Listener{Protocol: "imap", Address: "127.0.0.1:0", Handler: genHandler{"gen1"}}
	s := &Server{Listeners: []*Listener{a}, Limits: testLimits, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	b := &Listener{Protocol: "pop3", Address: "127.0.0.1:0", Handler: genHandler{"genB"}}
	if err := s.Apply([]*Listener{a, b}, testLimits); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { s.Serve(context.Background()); close(done) }()
	defer func() { s.Close(); <-done }()
	dialGen(t, a.Addr().String(), nil).expectBanner("gen1")
	dialGen(t, b.Addr().String(), nil).expectBanner("genB")
}

// TestApplySwapsCertificate: an implicit-TLS address kept by Apply
// presents the new certificate to new clients, and a session that
// shook hands with the old one goes on.
func TestApplySwapsCertificate(t *testing.T) {
	sc1, cc1 := testtls.Configs(t)
	sc2, cc2 := testtls.Configs(t)
	if bytes.Equal(sc1.Certificates[0].Certificate[0], sc2.Certificates[0].Certificate[0]) {
		t.Fatal("testtls gave the same certificate twice")
	}
	a1 := &Listener{Protocol: "imap", Address: "127.0.0.1:0", TLSMode: TLSImplicit, TLSConfig: sc1, Handler: genHandler{"gen1"}}
	s, _ := startApplyServer(t, a1)
	addr := a1.Addr().String()
	old := dialGen(t, addr, cc1)
	old.expectBanner("gen1")

	a2 := &Listener{Protocol: "imap", Address: "127.0.0.1:0", TLSMode: TLSImplicit, TLSConfig: sc2, Handler: genHandler{"gen2"}}
	if err := s.Apply([]*Listener{a2}, testLimits); err != nil {
		t.Fatal(err)
	}
	// cc2 trusts only the second certificate: the handshake proves it.
	c := dialGen(t, addr, cc2)
	c.expectBanner("gen2")
	peer := c.c.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw
	if !bytes.Equal(peer, sc2.Certificates[0].Certificate[0]) {
		t.Error("new connection did not get the new certificate")
	}
	old.echo("gen1", "still here")
}

// TestApplyRefusesMovingAUnixPath: a reload may not give a serving UNIX
// socket's path to another protocol (binding it would unlink the socket
// that serves); the socket stays as it was.
func TestApplyRefusesMovingAUnixPath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	h := genHandler{gen: "gen1"}
	srv := &Server{Listeners: []*Listener{{Protocol: "lmtp", Address: path, Handler: h}}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	go srv.Serve(context.Background())
	defer srv.Close()
	err := srv.Apply([]*Listener{{Protocol: "sieve", Address: path, Handler: genHandler{gen: "gen2"}}}, Limits{})
	if err == nil || !strings.Contains(err.Error(), "needs a restart") {
		t.Fatalf("Apply moved a UNIX path to another protocol: %v", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("the serving socket is gone: %v", err)
	}
	c.Close()
}
