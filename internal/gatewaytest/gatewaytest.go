// SPDX-License-Identifier: Apache-2.0

// Package gatewaytest holds what the front ends' transcript tests share:
// a gateway.Server on loopback in front of a one-backend director, a
// static passdb chain, a line-oriented client, and the harness of the
// pre-login fuzzers. Each protocol package keeps only its own dialogue
// (greetings, fake backend, expected replies).
package gatewaytest

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/db/static"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/passdb"
)

// Discard is a logger that drops everything.
var Discard = slog.New(slog.DiscardHandler)

// PassdbFunc is a gateway.Authenticator made of a function.
type PassdbFunc func(context.Context, *auth.Request) (auth.Result, error)

// Verify implements gateway.Authenticator.
func (f PassdbFunc) Verify(ctx context.Context, req *auth.Request) (auth.Result, error) {
	return f(ctx, req)
}

// StaticChain is a passdb chain of one static passdb with args, as the
// gateway builds it from the configuration, and a master passdb that
// accepts any master user whatever the password (the backend checks it),
// as "driver=static args=nopassword master=yes pass=yes" does in Dovecot.
func StaticChain(t testing.TB, args string) *passdb.Chain {
	t.Helper()
	db, err := static.New(args)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CheckPassdb(); err != nil {
		t.Fatal(err)
	}
	mdb, err := static.New("nopassword")
	if err != nil {
		t.Fatal(err)
	}
	master := passdb.NewEntry("masters", mdb)
	master.Master, master.OnSuccess = true, passdb.Continue
	return &passdb.Chain{Entries: []passdb.Entry{passdb.NewEntry("static", db)}, Masters: []passdb.Entry{master}, Log: Discard}
}

// NewPipeline is a login pipeline whose director knows one backend,
// 127.0.0.1, reached for service on port; the passdb is
// StaticChain("proxy=y nopassword=y"). Timeout 5 s, one connect attempt.
func NewPipeline(t testing.TB, service string, port int) *gateway.Pipeline {
	t.Helper()
	hosts, err := director.ParseHosts([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := director.New(director.Config{Hosts: hosts, Store: memory.New(), Logger: Discard})
	if err != nil {
		t.Fatal(err)
	}
	return &gateway.Pipeline{
		Passdb:          StaticChain(t, "proxy=y nopassword=y"),
		Director:        dir,
		Ports:           map[string]int{service: port},
		Timeout:         5 * time.Second,
		ConnectAttempts: 1,
		Log:             Discard,
	}
}

// Limits are the limits transcript tests start from.
func Limits() gateway.Limits {
	return gateway.Limits{LoginTimeout: 10 * time.Second, MaxLine: 8192}
}

// Serve runs a gateway.Server with the one listener l until the test
// ends, and returns l's address.
func Serve(t testing.TB, l *gateway.Listener, limits gateway.Limits, log *slog.Logger) string {
	t.Helper()
	srv := &gateway.Server{Listeners: []*gateway.Listener{l}, Limits: limits, Log: log}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { srv.Serve(ctx); close(served) }()
	t.Cleanup(func() { cancel(); srv.Close(); <-served })
	return l.Addr().String()
}

// ClosedPort returns a loopback port nothing listens on.
func ClosedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// Prefixes parses network prefixes.
func Prefixes(t testing.TB, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

// Client is one transcript's client side.
type Client struct {
	T    testing.TB
	Conn net.Conn
	R    *bufio.Reader
}

// Dial connects to addr from the loopback address from ("" for the
// default) and returns the client before the greeting.
func Dial(t testing.TB, addr, from string) *Client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %q: %v", addr, from, err)
	}
	return Wrap(t, conn)
}

// Wrap makes a client of an established connection; it is closed when
// the test ends, and nothing it does may take longer than 10 s.
func Wrap(t testing.TB, conn net.Conn) *Client {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &Client{T: t, Conn: conn, R: bufio.NewReader(conn)}
}

// Write sends raw bytes.
func (c *Client) Write(s string) {
	c.T.Helper()
	if _, err := io.WriteString(c.Conn, s); err != nil {
		c.T.Fatalf("write %q: %v", s, err)
	}
}

// Line reads one line without its CRLF; a line without CRLF fails.
func (c *Client) Line() string {
	c.T.Helper()
	s, err := c.R.ReadString('\n')
	if err != nil {
		c.T.Fatalf("read: %v (partial %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.T.Fatalf("line %q does not end in CRLF", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// Expect reads lines and compares them with want, in order. A want ending
// in "..." matches a prefix.
func (c *Client) Expect(want ...string) {
	c.T.Helper()
	for _, w := range want {
		got := c.Line()
		if p, ok := strings.CutSuffix(w, "..."); ok {
			if !strings.HasPrefix(got, p) {
				c.T.Fatalf("got  %q\nwant %q", got, w)
			}
		} else if got != w {
			c.T.Fatalf("got  %q\nwant %q", got, w)
		}
	}
}

// Do sends one line and expects the replies.
func (c *Client) Do(line string, want ...string) {
	c.T.Helper()
	c.Write(line + "\r\n")
	c.Expect(want...)
}

// ExpectClosed asserts that the gateway closes the connection without
// sending anything more.
func (c *Client) ExpectClosed() {
	c.T.Helper()
	rest, err := io.ReadAll(c.R)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset by peer") {
		c.T.Fatalf("waiting for close: %v (got %q)", err, rest)
	}
	if len(rest) > 0 {
		c.T.Fatalf("got %q before the close, want nothing", rest)
	}
}

// PanicCatcher is a log handler that keeps the sessions' recovered
// panics, for the fuzzers.
type PanicCatcher struct {
	mu     sync.Mutex
	stacks []string
}

func (h *PanicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (h *PanicCatcher) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *PanicCatcher) WithGroup(string) slog.Handler            { return h }

// Handle keeps "panic in session" records.
func (h *PanicCatcher) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "panic in session" {
		return nil
	}
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool { b.WriteString(a.String() + "\n"); return true })
	h.mu.Lock()
	h.stacks = append(h.stacks, b.String())
	h.mu.Unlock()
	return nil
}

// FuzzSession sends data to the gateway at addr as one client would,
// half-closes, and reads everything the gateway says until it hangs up.
// It fails the test when the gateway does not hang up within 10 s or when
// a session panicked (as caught by h). whole is false when the read
// ended in an error (a reset) rather than a clean close, so the output
// may be cut short.
func (h *PanicCatcher) FuzzSession(t *testing.T, addr string, data []byte) (out []byte, whole bool) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	tc := conn.(*net.TCPConn)
	defer func() { tc.SetLinger(0); tc.Close() }() // no TIME_WAIT pile-up
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	tc.Write(data) // the gateway may already have hung up
	tc.CloseWrite()
	out, err = io.ReadAll(tc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the gateway did not close the session; it sent %q", out)
	}
	h.mu.Lock()
	stacks := h.stacks
	h.stacks = nil
	h.mu.Unlock()
	if len(stacks) > 0 {
		t.Fatalf("session panicked:\n%s", stacks[0])
	}
	return out, err == nil
}
