// SPDX-License-Identifier: Apache-2.0

package sieve

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
// with one listener whose handler is a sieve.Server, a scripted fake
// ManageSieve backend, and a line-oriented client.

const (
	fakeOK          = `OK "Logged in."`
	authFailed      = `NO "Authentication failed."`
	tryLater        = `NO (TRYLATER) "Temporary authentication failure."`
	internalError   = `NO "Internal error occurred. Refer to server log for more information."`
	encryptNeeded   = `NO (ENCRYPT-NEEDED) "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."`
	invalidCommand  = `NO "Error in MANAGESIEVE command received by server."`
	readyOK         = `OK "maildirector ready."`
	noopOK          = `OK "NOOP completed."`
	capabilityOK    = `OK "Capability completed."`
	tooManyInvalid  = `BYE "Too many invalid MANAGESIEVE commands."`
	tooManyFailures = `BYE "Too many authentication failures."`
)

// capLines are the capability lines a client sees: sasl is the SASL
// list; STARTTLS and XCLIENT appear when offered.
func capLines(sasl string, starttls, xclient bool) []string {
	l := []string{
		`"IMPLEMENTATION" "maildirector"`,
		`"SIEVE" "` + DefaultExtensions + `"`,
		`"NOTIFY" "mailto"`,
		`"SASL" "` + sasl + `"`,
	}
	if starttls {
		l = append(l, `"STARTTLS"`)
	}
	l = append(l, `"VERSION" "1.0"`)
	if xclient {
		l = append(l, `"XCLIENT"`)
	}
	return l
}

// greeting is capLines and the OK.
func greeting(sasl string, starttls, xclient bool) []string {
	return append(capLines(sasl, starttls, xclient), readyOK)
}

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
			Ports:           map[string]int{"sieve": be.port()},
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
	s.listener = &gateway.Listener{Protocol: "sieve", Address: "127.0.0.1:0", Handler: s.server}
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
// passdb that lets the backend check master passwords.
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

// connect dials from the default address (secured: local) and expects
// the greeting.
func (e *env) connect() *client {
	e.t.Helper()
	c := e.dial("")
	c.expect(greeting("PLAIN LOGIN", false, false)...)
	return c
}

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

// plainLogin is the backend's AUTHENTICATE for user with pass, authzid
// empty; masterLogin is a master user's.
func plainLogin(user, pass string) string {
	return `AUTHENTICATE "PLAIN" "` + b64("\x00"+user+"\x00"+pass) + `"`
}

func masterLogin(user, master, pass string) string {
	return `AUTHENTICATE "PLAIN" "` + b64(user+"\x00"+master+"\x00"+pass) + `"`
}

// xclientLine matches the XCLIENT the gateway forwards for a client at
// ip:port with ttl hops left.
func xclientLine(ip string, port, ttl int) string {
	return `~^XCLIENT ADDR=` + regexp.QuoteMeta(ip) + ` PORT=` + strconv.Itoa(port) +
		` SESSION=[A-Za-z0-9+/]{12} TTL=` + strconv.Itoa(ttl) + `$`
}

const anyXCLIENT = `~^XCLIENT ADDR=127\.0\.0\.1 PORT=\d+ SESSION=[A-Za-z0-9+/]{12} TTL=4$`

func localPort(c *client) int { return c.conn.LocalAddr().(*net.TCPAddr).Port }

func TestGreetingCapabilityNoopLogout(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.do("CAPABILITY", append(capLines("PLAIN LOGIN", false, false), capabilityOK)...)
	c.do("capability", append(capLines("PLAIN LOGIN", false, false), capabilityOK)...)
	c.do("noop", noopOK)
	c.do("LOGOUT", `OK "Logout completed."`)
	c.expectClosed()
	if n := e.backend.connections(); n != 0 {
		t.Fatalf("backend got %d connections, want 0", n)
	}
}

// TestGreetingSettings: what the Server's fields change, and that the
// whole greeting arrives in one write (Pigeonhole corks it: some clients
// read it with a single read).
func TestGreetingSettings(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.server.Implementation = "Example Sieve"
		s.server.Extensions = "fileinto vacation"
		s.server.Notify = "mailto xmpp"
		s.server.Greeting = `Hello "there".`
		s.server.Mechs = []mechs.Mechanism{mechs.Plain}
	})
	c := e.dial("")
	want := "\"IMPLEMENTATION\" \"Example Sieve\"\r\n\"SIEVE\" \"fileinto vacation\"\r\n\"NOTIFY\" \"mailto xmpp\"\r\n" +
		"\"SASL\" \"PLAIN\"\r\n\"VERSION\" \"1.0\"\r\nOK \"Hello \\\"there\\\".\"\r\n"
	buf := make([]byte, 4096)
	n, err := c.conn.Read(buf)
	if err != nil || string(buf[:n]) != want {
		t.Fatalf("greeting in one read: %q, %v\nwant %q", buf[:n], err, want)
	}
}

// TestPlaintextPolicy: a client from 127.0.0.2 talking to 127.0.0.1 is
// neither TLS, nor trusted, nor local: no plaintext mechanism is offered
// or accepted.
func TestPlaintextPolicy(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		e := start(t)
		c := e.dial("127.0.0.2")
		c.expect(greeting("", false, false)...)
		c.do("CAPABILITY", append(capLines("", false, false), capabilityOK)...)
		c.do(`AUTHENTICATE "PLAIN" "`+b64("\x00bob\x00secret")+`"`, encryptNeeded)
		c.do(`AUTHENTICATE "LOGIN"`, encryptNeeded)
		c.do(`AUTHENTICATE "PLAIN"`, encryptNeeded)
		// Refusals are not failed logins: no BYE after three.
		ir := b64("\x00bob\x00secret")
		c.do(`AUTHENTICATE "PLAIN" {`+strconv.Itoa(len(ir))+"+}\r\n"+ir, encryptNeeded)
		c.do("NOOP", noopOK)
		if n := e.backend.connections(); n != 0 {
			t.Fatalf("backend got %d connections, want 0", n)
		}
	})
	for name, opt := range map[string]func(*setup){
		"allow_plaintext": func(s *setup) { s.listener.AllowPlaintext = true },
		"trusted":         func(s *setup) { s.listener.Trusted = prefixes(t, "127.0.0.2/32") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, opt)
			c := e.dial("127.0.0.2")
			c.expect(greeting("PLAIN LOGIN", false, name == "trusted")...)
			c.do(`AUTHENTICATE "PLAIN" "`+b64("\x00bob\x00secret")+`"`, fakeOK)
			c.do("LISTSCRIPTS", `OK "fake LISTSCRIPTS"`)
		})
	}
}

// TestUnknownCommand: the commands of the authenticated state, and
// anything else, are invalid before login.
func TestUnknownCommand(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.do("LISTSCRIPTS", invalidCommand)
	c.do("NOOP", noopOK)
	c.do(`PUTSCRIPT "a" {5+}`+"\r\nkeep;", invalidCommand)
	c.do("NOOP", noopOK)
	// XCLIENT is for trusted peers only.
	c.do("XCLIENT ADDR=192.0.2.1", tooManyInvalid)
	c.expectClosed()
}

func TestBadSyntax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ line, want string }{
		{"", invalidCommand},
		{" NOOP", invalidCommand},
		{`"NOOP"`, invalidCommand},
		{"NOOP(", invalidCommand},
		{"CAPABILITY now", invalidCommand},
		{"LOGOUT now", invalidCommand},
		{"STARTTLS now", invalidCommand},
		{`NOOP "a" "b"`, invalidCommand},
		{`NOOP "a`, `NO "Missing '\"'."`},
		{`NOOP "a\b"`, `NO "Escaped quoted-string character is not a QUOTED-SPECIAL."`},
		{`NOOP "a""b"`, `NO "Missing space between arguments."`},
		{`NOOP  "a"`, `NO "Missing or invalid argument."`},
		{`NOOP "a" `, `NO "Missing or invalid argument."`},
		{"NOOP {3}x", `NO "Broken literal."`},
		{"NOOP {x}", `NO "Broken literal size."`},
		{"NOOP {-1}", `NO "Broken literal size."`},
		{"NOOP {+1}", `NO "Broken literal size."`},
		{"NOOP {}", `NO "Broken literal size."`},
		{"AUTHENTICATE", `NO "Error in MANAGESIEVE command AUTHENTICATE: Invalid arguments."`},
		{"AUTHENTICATE PLAIN", `NO "Error in MANAGESIEVE command AUTHENTICATE: Invalid arguments."`},
		{`AUTHENTICATE "PLAIN" AGJvYgBzZWNyZXQ=`, `NO "Error in MANAGESIEVE command AUTHENTICATE: Invalid arguments."`},
		{`AUTHENTICATE "PLAIN" "a" "b"`, `NO "Error in MANAGESIEVE command AUTHENTICATE: Invalid arguments."`},
	} {
		t.Run(tc.line, func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.do(tc.line, tc.want)
			c.do("NOOP", noopOK)
		})
	}
}

// TestNoopTag: NOOP echoes a string argument in a TAG response code
// (RFC 5804 2.12), as a literal when it cannot be quoted.
func TestNoopTag(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.do(`NOOP "STARTTLS-RESYNC-CAPA"`, `OK (TAG "STARTTLS-RESYNC-CAPA") "Done"`)
	c.do(`Noop "a\"b\\c"`, `OK (TAG "a\"b\\c") "Done"`)
	c.do(`NOOP ""`, `OK (TAG "") "Done"`)
	c.do("NOOP {3+}\r\nx y", `OK (TAG "x y") "Done"`)
	c.do("NOOP {3}\r\nx\"y", `OK (TAG "x\"y") "Done"`)
	c.do("NOOP {4+}\r\na\r\nb", "OK (TAG {4}", "a", `b) "Done"`)
	long := strings.Repeat("t", 1025)
	c.do("NOOP {1025+}\r\n"+long, "OK (TAG {1025}", long+`) "Done"`)
	c.do(`NOOP "ok" `+"\t", `NO "Missing or invalid argument."`)
	c.do("NOOP tag", `NO "Invalid echo tag."`)
	c.do("NOOP tag", `NO "Invalid echo tag."`)
	c.do("NOOP tag", `NO "Invalid echo tag."`)
	c.do("NOOP", noopOK)
}
