// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"encoding/base64"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/internal/gatewaytest"
	"github.com/maildirector/maildirector/mechs"
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
	s := setup{
		backend:  be,
		pipeline: gatewaytest.NewPipeline(t, "pop3", be.port()),
		limits:   gatewaytest.Limits(),
		log:      gatewaytest.Discard,
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
	return &env{setup: s, t: t, addr: gatewaytest.Serve(t, s.listener, s.limits, s.log)}
}

// withArgs replaces the passdb by a static one with args.
func withArgs(args string) func(*setup) {
	return func(s *setup) { s.pipeline.Passdb = gatewaytest.StaticChain(s.backend.t, args) }
}

// client is one transcript's client side, with the protocol's own
// steps added.
type client struct{ *gatewaytest.Client }

// dial connects from the loopback address from ("" for the default) and
// returns the client before the greeting.
func (e *env) dial(from string) *client {
	return &client{gatewaytest.Dial(e.t, e.addr, from)}
}

func (e *env) wrap(conn net.Conn) *client {
	return &client{gatewaytest.Wrap(e.t, conn)}
}

// connect dials from the default address and expects the greeting.
func (e *env) connect() *client {
	e.t.Helper()
	c := e.dial("")
	c.Expect(greeting)
	return c
}

// login runs USER and PASS and expects the reply to PASS.
func (c *client) login(user, pass, want string) {
	c.T.Helper()
	c.Do("USER "+user, "+OK")
	c.Do("PASS "+pass, want)
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// xclientLine matches the XCLIENT the gateway forwards for a client at
// ip:port with ttl hops left after the gateway.
func xclientLine(ip string, port, ttl int) string {
	return `~^XCLIENT ADDR=` + regexp.QuoteMeta(ip) + ` PORT=` + strconv.Itoa(port) +
		` SESSION=[A-Za-z0-9+/]{12} TTL=` + strconv.Itoa(ttl) + `$`
}

func localPort(c *client) int { return c.Conn.LocalAddr().(*net.TCPAddr).Port }

func TestGreetingCapaQuit(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("CAPA", capaLocal...)
	c.Do("capa", capaLocal...)
	c.Do("QUIT", "+OK Logging out")
	c.ExpectClosed()
	e.backend.expectUntouched(t)
}

func TestGreetingText(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.server.Greeting = "Hello there." })
	e.dial("").Expect("+OK Hello there.")
}

// TestPlaintextPolicy: a client from 127.0.0.2 talking to 127.0.0.1 is
// neither TLS, nor trusted, nor local.
func TestPlaintextPolicy(t *testing.T) {
	t.Parallel()
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		e := start(t)
		c := e.dial("127.0.0.2")
		c.Expect(greeting)
		c.Do("CAPA", "+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", ".")
		c.Do("AUTH", "+OK", ".")
		c.Do("USER bob", privacyRequired)
		c.Do("PASS secret", privacyRequired)
		c.Do("AUTH PLAIN "+b64("\x00bob\x00secret"), privacyRequired)
		c.Do("AUTH LOGIN", privacyRequired)
		// Refusals are neither failed logins nor invalid commands: no
		// disconnection after three.
		c.Do("USER bob", privacyRequired)
		c.Do("CAPA", "+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", ".")
		e.backend.expectUntouched(t)
	})
	for name, opt := range map[string]func(*setup){
		"allow_plaintext": func(s *setup) { s.listener.AllowPlaintext = true },
		"trusted":         func(s *setup) { s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.2/32") },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, opt)
			c := e.dial("127.0.0.2")
			c.Expect("+OK ...")
			c.Do("CAPA", capaLocal...)
			c.login("bob", "secret", fakeOK)
			c.Do("STAT", "+OK fake STAT")
			c2 := e.dial("127.0.0.2")
			c2.Expect("+OK ...")
			c2.Do("AUTH PLAIN "+b64("\x00bob\x00secret"), fakeOK)
		})
	}
}

// TestAPOP: APOP is refused as by a Dovecot without the apop mechanism,
// and the session goes on.
func TestAPOP(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("APOP bob 0123456789abcdef0123456789abcdef", "-ERR APOP not enabled.")
	c.Do("CAPA", capaLocal...)
	e.backend.expectUntouched(t)
}

// TestEmptyUser: USER takes the empty name, as pop3-login does; PASS then
// fails without asking anyone.
func TestEmptyUser(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("USER", "+OK")
	c.Do("PASS secret", authFailed)
	c.Do("CAPA", capaLocal...)
	e.backend.expectUntouched(t)
}

// TestTrustedGreeting: a trusted peer is offered XCLIENT, as Dovecot's
// pop3-login does.
func TestTrustedGreeting(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.listener.Trusted = gatewaytest.Prefixes(t, "127.0.0.0/8") })
	e.dial("").Expect("+OK [XCLIENT] maildirector ready.")
}

// TestUnknownCommands: TRANSACTION-state commands and garbage keywords
// before login are refused (and counted).
func TestUnknownCommands(t *testing.T) {
	t.Parallel()
	for _, line := range []string{"NOOP", "STAT", "RETR 1", "FOO", "", " USER bob",
		"USERX bob", strings.Repeat("U", 17)} {
		t.Run(strconv.Quote(line), func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.Do(line, unknownCommand)
			c.Do("CAPA", capaLocal...)
			e.backend.expectUntouched(t)
		})
	}
}

// TestBadArguments: each command's odd forms, answered as Dovecot's
// pop3-login answers them, and the session goes on.
func TestBadArguments(t *testing.T) {
	t.Parallel()
	authList := []string{"+OK", "PLAIN", "LOGIN", "."}
	badIR := "-ERR [AUTH] Invalid base64 data in initial response"
	for _, tc := range []struct {
		line string
		want []string
	}{
		// CAPA and STLS ignore arguments.
		{"CAPA now", capaLocal},
		{"CAPA ", capaLocal},
		{"STLS now", []string{"-ERR TLS support isn't enabled."}},
		{"STLS", []string{"-ERR TLS support isn't enabled."}},
		// USER takes any name, the empty one too; PASS then fails.
		{"USER", []string{"+OK"}},
		{"USER ", []string{"+OK"}},
		{"PASS secret", []string{"-ERR No username given."}},
		{"USER bob\r", []string{"-ERR Invalid characters in command line."}},
		// AUTH: the mechanism ends at the first space, the rest of the
		// line is the initial response.
		{"AUTH ", authList},
		{"AUTH  PLAIN", authList},
		{"AUTH PLAIN  x", []string{badIR}},
		{"AUTH PLAIN x y", []string{badIR}},
	} {
		t.Run(strconv.Quote(tc.line), func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.Do(tc.line, tc.want...)
			c.Do("CAPA", capaLocal...)
			e.backend.expectUntouched(t)
		})
	}
}

// TestAuthList: AUTH without arguments lists the mechanisms offered.
func TestAuthList(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("AUTH", "+OK", "PLAIN", "LOGIN", ".")
	c.Do("auth", "+OK", "PLAIN", "LOGIN", ".")
}

// TestNoMechanisms: without SASL mechanisms, CAPA has no SASL line.
func TestNoMechanisms(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.server.Mechs = nil })
	c := e.connect()
	c.Do("CAPA", "+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "USER", ".")
	c.Do("AUTH", "+OK", ".")
	c.Do("AUTH PLAIN", "-ERR [AUTH] Unsupported authentication mechanism.")
	c.login("bob", "secret", fakeOK)
}
