// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/db/static"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
	"github.com/maildirector/maildirector/passdb"
)

// The tests are transcripts over real loopback sockets: a gateway.Server
// with one listener whose handler is a pop3.Server, a scripted fake POP3
// backend that behaves like Dovecot's pop3-login, and a line-oriented
// client.

const (
	greeting = "+OK maildirector ready."
	// fakeGreeting is what Dovecot 2.3 sends a peer in its
	// login_trusted_networks.
	fakeGreeting    = "+OK [XCLIENT] Dovecot (Debian) ready."
	fakeOK          = "+OK Logged in."
	authFailed      = "-ERR [AUTH] Authentication failed."
	tempFail        = "-ERR [SYS/TEMP] Temporary authentication failure."
	internalError   = "-ERR [SYS/PERM] Internal error occurred. Refer to server log for more information."
	privacyRequired = "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
	unknownCommand  = "-ERR Unknown command."
)

// capaLocal is the CAPA reply a secured cleartext client gets.
var capaLocal = []string{"+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "USER", "SASL PLAIN LOGIN", "."}

var discard = slog.New(slog.DiscardHandler)

// setup is what a test may change before the gateway starts.
type setup struct {
	listener *gateway.Listener
	server   *Server
	pipeline *gateway.Pipeline
	limits   gateway.Limits
	backend  *fakeBackend
	log      *slog.Logger // the gateway.Server's
}

type env struct {
	setup
	t    testing.TB
	addr string // the gateway's address
}

// start runs a gateway in front of a fake backend; opts adjust the setup.
func start(t testing.TB, opts ...func(*setup)) *env {
	t.Helper()
	be := newFakeBackend(t)
	hosts, err := director.ParseHosts([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	dir, err := director.New(director.Config{Hosts: hosts, Store: memory.New(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	s := setup{
		backend: be,
		pipeline: &gateway.Pipeline{
			Passdb:          staticDB(t, "proxy=y nopassword=y"),
			Director:        dir,
			Ports:           map[string]int{"pop3": be.port()},
			Timeout:         5 * time.Second,
			ConnectAttempts: 1,
			Log:             discard,
		},
		limits: gateway.Limits{LoginTimeout: 10 * time.Second, MaxLine: 8192},
		log:    discard,
	}
	s.server = &Server{
		Pipeline:        s.pipeline,
		Registry:        &gateway.Registry{},
		Mechs:           []mechs.Mechanism{mechs.Plain, mechs.Login},
		MaxAuthFailures: 3,
		MaxBadCommands:  3,
	}
	s.listener = &gateway.Listener{Protocol: "pop3", Address: "127.0.0.1:0", Handler: s.server}
	for _, o := range opts {
		o(&s)
	}
	be.run()
	srv := &gateway.Server{Listeners: []*gateway.Listener{s.listener}, Limits: s.limits, Log: s.log}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { srv.Serve(ctx); close(served) }()
	t.Cleanup(func() { cancel(); srv.Close(); <-served })
	return &env{setup: s, t: t, addr: s.listener.Addr().String()}
}

// staticDB is a passdb chain of one static passdb with args, and a master
// passdb that accepts any master user (the backend checks the password).
func staticDB(t testing.TB, args string) *passdb.Chain {
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
	return &passdb.Chain{Entries: []passdb.Entry{passdb.NewEntry("static", db)}, Masters: []passdb.Entry{master}, Log: discard}
}

// withArgs replaces the passdb by a static one with args.
func withArgs(args string) func(*setup) {
	return func(s *setup) { s.pipeline.Passdb = staticDB(s.backend.t, args) }
}

// passdbFunc is a gateway.Authenticator made of a function.
type passdbFunc func(context.Context, *auth.Request) (auth.Result, error)

func (f passdbFunc) Verify(ctx context.Context, req *auth.Request) (auth.Result, error) {
	return f(ctx, req)
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// client is one transcript's client side.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dial connects from the loopback address from ("" for the default) and
// returns the client before the greeting.
func (e *env) dial(from string) *client {
	e.t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", e.addr)
	if err != nil {
		e.t.Fatalf("dial %s from %q: %v", e.addr, from, err)
	}
	return e.wrap(conn)
}

func (e *env) wrap(conn net.Conn) *client {
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	e.t.Cleanup(func() { conn.Close() })
	return &client{t: e.t, conn: conn, r: bufio.NewReader(conn)}
}

// connect dials from the default address and expects the greeting.
func (e *env) connect() *client {
	e.t.Helper()
	c := e.dial("")
	c.expect(greeting)
	return c
}

// write sends raw bytes.
func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// line reads one line without its CRLF.
func (c *client) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (partial %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// expect reads lines and compares them with want, in order. A want ending
// in "..." matches a prefix.
func (c *client) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		got := c.line()
		if p, ok := strings.CutSuffix(w, "..."); ok {
			if !strings.HasPrefix(got, p) {
				c.t.Fatalf("got  %q\nwant %q", got, w)
			}
		} else if got != w {
			c.t.Fatalf("got  %q\nwant %q", got, w)
		}
	}
}

// do sends one line and expects the replies.
func (c *client) do(line string, want ...string) {
	c.t.Helper()
	c.write(line + "\r\n")
	c.expect(want...)
}

// login runs USER and PASS and expects the reply to PASS.
func (c *client) login(user, pass, want string) {
	c.t.Helper()
	c.do("USER "+user, "+OK")
	c.do("PASS "+pass, want)
}

// expectClosed asserts that the gateway closes the connection without
// sending anything more.
func (c *client) expectClosed() {
	c.t.Helper()
	rest, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset by peer") {
		c.t.Fatalf("waiting for close: %v (got %q)", err, rest)
	}
	if len(rest) > 0 {
		c.t.Fatalf("got %q before the close, want nothing", rest)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// xclientLine matches the XCLIENT the gateway forwards for a client at
// ip:port with ttl hops left after the gateway.
func xclientLine(ip string, port, ttl int) string {
	return `~^XCLIENT ADDR=` + regexp.QuoteMeta(ip) + ` PORT=` + strconv.Itoa(port) +
		` SESSION=[A-Za-z0-9+/]{12} TTL=` + strconv.Itoa(ttl) + `$`
}

func prefixes(t testing.TB, ss ...string) []netip.Prefix {
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

func localPort(c *client) int { return c.conn.LocalAddr().(*net.TCPAddr).Port }

func TestGreetingCapaQuit(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.do("CAPA", capaLocal...)
	c.do("capa", capaLocal...)
	c.do("QUIT", "+OK Logging out.")
	c.expectClosed()
	e.backend.expectUntouched(t)
}

func TestGreetingText(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.server.Greeting = "Hello there." })
	e.dial("").expect("+OK Hello there.")
}

// TestPlaintextPolicy: a client from 127.0.0.2 talking to 127.0.0.1 is
// neither TLS, nor trusted, nor local.
func TestPlaintextPolicy(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		e := start(t)
		c := e.dial("127.0.0.2")
		c.expect(greeting)
		c.do("CAPA", "+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", ".")
		c.do("AUTH", "+OK", ".")
		c.do("USER bob", privacyRequired)
		c.do("PASS secret", privacyRequired)
		c.do("AUTH PLAIN "+b64("\x00bob\x00secret"), privacyRequired)
		c.do("AUTH LOGIN", privacyRequired)
		// Refusals are neither failed logins nor invalid commands: no
		// disconnection after three.
		c.do("USER bob", privacyRequired)
		c.do("CAPA", "+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", ".")
		e.backend.expectUntouched(t)
	})
	for name, opt := range map[string]func(*setup){
		"allow_plaintext": func(s *setup) { s.listener.AllowPlaintext = true },
		"trusted":         func(s *setup) { s.listener.Trusted = prefixes(t, "127.0.0.2/32") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, opt)
			c := e.dial("127.0.0.2")
			c.expect("+OK ...")
			c.do("CAPA", capaLocal...)
			c.login("bob", "secret", fakeOK)
			c.do("STAT", "+OK fake STAT")
			c2 := e.dial("127.0.0.2")
			c2.expect("+OK ...")
			c2.do("AUTH PLAIN "+b64("\x00bob\x00secret"), fakeOK)
		})
	}
}

// TestTrustedGreeting: a trusted peer is offered XCLIENT, as Dovecot's
// pop3-login does.
func TestTrustedGreeting(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.listener.Trusted = prefixes(t, "127.0.0.0/8") })
	e.dial("").expect("+OK [XCLIENT] maildirector ready.")
}

// TestUnknownCommands: TRANSACTION-state commands and garbage keywords
// before login are refused (and counted).
func TestUnknownCommands(t *testing.T) {
	t.Parallel()
	for _, line := range []string{"NOOP", "STAT", "RETR 1", "APOP bob 0123456789abcdef", "FOO", "", " USER bob",
		"USERX bob", strings.Repeat("U", 17)} {
		t.Run(strconv.Quote(line), func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.do(line, unknownCommand)
			c.do("CAPA", capaLocal...)
			e.backend.expectUntouched(t)
		})
	}
}

// TestBadArguments: each command's malformed forms, and the session goes
// on.
func TestBadArguments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ line, want string }{
		{"CAPA now", "-ERR Unexpected arguments."},
		{"CAPA ", "-ERR Unexpected arguments."},
		{"STLS now", "-ERR Unexpected arguments."},
		{"STLS", "-ERR TLS support isn't enabled."},
		{"USER", "-ERR Missing user name."},
		{"USER ", "-ERR Missing user name."},
		{"PASS secret", "-ERR No username given."},
		{"USER bob\r", "-ERR Invalid characters in command line."},
		{"AUTH ", "-ERR Invalid arguments."},
		{"AUTH  PLAIN", "-ERR Invalid arguments."},
		{"AUTH PLAIN  x", "-ERR Invalid arguments."},
		{"AUTH PLAIN x y", "-ERR Invalid arguments."},
		{"AUTH PLAIN ", "-ERR Invalid arguments."},
	} {
		t.Run(strconv.Quote(tc.line), func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.do(tc.line, tc.want)
			c.do("CAPA", capaLocal...)
			e.backend.expectUntouched(t)
		})
	}
}

// TestAuthList: AUTH without arguments lists the mechanisms offered.
func TestAuthList(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.do("AUTH", "+OK", "PLAIN", "LOGIN", ".")
	c.do("auth", "+OK", "PLAIN", "LOGIN", ".")
}

// TestNoMechanisms: without SASL mechanisms, CAPA has no SASL line.
func TestNoMechanisms(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.server.Mechs = nil })
	c := e.connect()
	c.do("CAPA", "+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "USER", ".")
	c.do("AUTH", "+OK", ".")
	c.do("AUTH PLAIN", "-ERR Unsupported authentication mechanism.")
	c.login("bob", "secret", fakeOK)
}
