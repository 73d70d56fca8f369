// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/internal/gatewaytest"
)

// passdbAnswer returns a passdb that always gives res, err.
func passdbAnswer(res auth.Result, err error) func(*setup) {
	return func(s *setup) {
		s.pipeline.Passdb = gatewaytest.PassdbFunc(func(context.Context, *auth.Request) (auth.Result, error) { return res, err })
	}
}

// backendAnswer makes the backend reply ans to every login.
func backendAnswer(ans string) func(*setup) {
	return func(s *setup) {
		s.backend.answer = func(string, string, string) string { return ans }
	}
}

func backendGreeting(lines ...string) func(*setup) {
	return func(s *setup) { s.backend.greeting = lines }
}

// TestLoginFailures: each kind of failure has its fixed reply, the session
// goes on, and nothing but a definitive "no" reads as a wrong password.
func TestLoginFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opt     func(*setup)
		want    string
		backend bool // whether the backend is contacted
	}{
		{"backend says NO", backendAnswer(`NO "Authentication failed."`), authFailed, true},
		{"backend says NO with another text", backendAnswer(`NO "Go away."`), authFailed, true},
		{"backend says NO without text", backendAnswer(`NO`), authFailed, true},
		{"backend says NO (ALERT)", backendAnswer(`NO (ALERT) "Account locked."`), authFailed, true},
		{"backend says TRYLATER", backendAnswer(`NO (TRYLATER) "Maintenance."`), tryLater, true},
		{"backend says trylater in lower case", backendAnswer(`no (trylater) "Maintenance."`), tryLater, true},
		{"backend says ENCRYPT-NEEDED", backendAnswer(`NO (ENCRYPT-NEEDED) "Use TLS."`), internalError, true},
		{"backend says BYE", backendAnswer(`BYE "Shutting down."`), tryLater, true},
		{"backend sends a challenge", backendAnswer(`"eA=="`), internalError, true},
		{"backend sends garbage", backendAnswer(`WHAT "?"`), tryLater, true},
		{"backend hangs up during login", backendAnswer(""), tryLater, true},
		{"backend greets with BYE", backendGreeting(`BYE "Too busy"`), tryLater, true},
		{"backend greets with NO", backendGreeting(`"SASL" "PLAIN"`, `NO "Not now"`), tryLater, true},
		{"backend greets with a broken line", backendGreeting(`"SASL" "PLAIN`, `OK "ready"`), tryLater, true},
		{"backend greets with an atom", backendGreeting(`SASL "PLAIN"`, `OK "ready"`), tryLater, true},
		{"backend greets forever", backendGreeting(strings.Repeat("\"X\"\r\n", 150) + `OK "ready"`), tryLater, true},
		{"backend port closed", func(s *setup) { s.pipeline.Ports["sieve"] = gatewaytest.ClosedPort(t) }, tryLater, false},
		{"passdb temporary failure", passdbAnswer(auth.Result{}, auth.Temporary("passdb fake", errors.New("db down"))), tryLater, false},
		{"passdb unclassified error", passdbAnswer(auth.Result{}, errors.New("eh")), tryLater, false},
		{"passdb internal failure", passdbAnswer(auth.Result{}, auth.Internal("passdb fake", errors.New("bad config"))), internalError, false},
		{"passdb unknown user", passdbAnswer(auth.Result{Status: auth.StatusUserUnknown}, nil), authFailed, false},
		{"passdb password mismatch", passdbAnswer(auth.Result{Status: auth.StatusPasswordMismatch}, nil), authFailed, false},
		{"static password mismatch", withArgs("proxy=y password=x"), authFailed, false},
		{"nologin with reason", withArgs("proxy=y nopassword=y nologin reason=Moved"), `NO "Moved"`, false},
		{"nologin without reason", withArgs("proxy=y nopassword=y nologin"), authFailed, false},
		{"nologin reason with quotes and CRLF", passdbAnswer(auth.Result{Status: auth.StatusOK,
			Fields: auth.Fields{"nologin": "y", "reason": "Moved \"there\"\r\nOK \"injected\""}}, nil), `NO "Moved \"there\"  OK \"injected\""`, false},
		{"passdb disabled status", passdbAnswer(auth.Result{Status: auth.StatusUserDisabled}, nil), authFailed, false},
		{"passdb bad port field", passdbAnswer(auth.Result{Status: auth.StatusOK, Fields: auth.Fields{"port": "sieve"}}, nil), internalError, false},
		{"passdb bad proxy_timeout field", passdbAnswer(auth.Result{Status: auth.StatusOK, Fields: auth.Fields{"proxy_timeout": "soon"}}, nil), internalError, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, tc.opt)
			c := e.connect()
			c.Do(authPlain("bob", "secret"), tc.want)
			c.Do("NOOP", noopOK)
			if got := e.backend.connections() > 0; got != tc.backend {
				t.Fatalf("backend contacted: %v, want %v", got, tc.backend)
			}
		})
	}
}

// TestProxyLoop: a target that is the gateway itself is refused.
func TestProxyLoop(t *testing.T) {
	t.Parallel()
	port := gatewaytest.ClosedPort(t)
	e := start(t, func(s *setup) {
		s.listener.Address = "127.0.0.1:" + strconv.Itoa(port)
		s.pipeline.Self = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}
		s.pipeline.Ports["sieve"] = port
	})
	c := e.connect()
	c.Do(authPlain("bob", "secret"), internalError)
	c.Do("NOOP", noopOK)
}

func TestTooManyAuthFailures(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do(authPlain("bob", "wrong"), authFailed)
	c.Do("NOOP", noopOK)
	c.Do(authPlain("bob", "wrong"), authFailed)
	c.Do(authPlain("bob", "wrong"), authFailed, tooManyFailures)
	c.ExpectClosed()
}

// TestTemporaryFailuresCount: temporary failures count as failed logins
// too (a client cannot retry forever), but never read as a wrong password.
func TestTemporaryFailuresCount(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.pipeline.Ports["sieve"] = gatewaytest.ClosedPort(t) })
	c := e.connect()
	for range 2 {
		c.Do(authPlain("bob", "secret"), tryLater)
	}
	c.Do(authPlain("bob", "secret"), tryLater, tooManyFailures)
	c.ExpectClosed()
}

func TestTooManyBadCommands(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("FOO", invalidCommand)
	c.Do("NOOP", noopOK)
	c.Do("AUTHENTICATE", invalidCommand)
	c.Do("HAVESPACE", tooManyInvalid)
	c.ExpectClosed()
}

func TestGarbage(t *testing.T) {
	t.Parallel()
	for _, line := range []string{
		"NOOP\x00", "\x00", `NOOP "a` + "\x00" + `b"`, "\xff\xfe NOOP", "\x16\x03\x01\x02\x00\x01\x00",
		`AUTHENTICATE "PLAIN" {3+}` + "\r\na\x00b", `NOOP {1+}` + "\r\nx\x00",
	} {
		t.Run(strconv.Quote(line), func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.Do(line, `BYE "Garbage received."`)
			c.ExpectClosed()
		})
	}
	t.Run("in an AUTHENTICATE response", func(t *testing.T) {
		t.Parallel()
		e := start(t)
		c := e.connect()
		c.Do(`AUTHENTICATE "PLAIN"`, `""`)
		c.Do("\"a\x00\"", `BYE "Garbage received."`)
		c.ExpectClosed()
	})
}

func TestLineLength(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	// 8190 bytes and CRLF fill the 8192-byte line buffer exactly.
	c.Do(`NOOP "`+strings.Repeat("x", 8190-len(`NOOP ""`))+`"`, `OK (TAG {8183}`, strings.Repeat("x", 8183)+`) "Done"`)
	c.Do("NOOP "+strings.Repeat("x", 9000), `BYE "Too long command line."`)
	c.ExpectClosed()
}

func TestLiteralLimits(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	// At the limit a literal is accepted.
	tag := strings.Repeat("t", 8192)
	c.Do("NOOP {8192+}\r\n"+tag, "OK (TAG {8192}", tag+`) "Done"`)
	c.Do(`AUTHENTICATE "PLAIN" `+lit(b64("\x00bob\x00"+strings.Repeat("p", 1024))), fakeOK)
	e.backend.expectReceived(t, anyXCLIENT, plainLogin("bob", strings.Repeat("p", 1024)))

	// Over it, its bytes are on the way and cannot be skipped: BYE, for
	// both forms.
	for _, l := range []string{"{8193+}", "{8193}"} {
		c = e.connect()
		c.Do(`AUTHENTICATE "PLAIN" `+l, `BYE "Literal size too large"`)
		c.ExpectClosed()
	}
}

// TestCommandSizeIsBounded: one command cannot pile up literals beyond
// the command bound.
func TestCommandSizeIsBounded(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	var b strings.Builder
	b.WriteString("NOOP")
	chunk := strings.Repeat("x", 8000)
	for i := 0; i < 10; i++ {
		b.WriteString(" {8000+}\r\n" + chunk)
	}
	c.Write(b.String())
	c.Expect(`BYE "Literal size too large"`)
	c.ExpectClosed()
}

// TestLoginTimeout: a client that does not log in in time is disconnected,
// whether idle or in the middle of a command.
func TestLoginTimeout(t *testing.T) {
	t.Parallel()
	for name, talk := range map[string]func(c *client){
		"idle":               func(c *client) {},
		"after a command":    func(c *client) { c.Do("NOOP", noopOK) },
		"partial line":       func(c *client) { c.Write("NOO") },
		"in a literal":       func(c *client) { c.Write(`AUTHENTICATE "PLAIN" {20+}` + "\r\nAGJ") },
		"in an AUTHENTICATE": func(c *client) { c.Do(`AUTHENTICATE "PLAIN"`, `""`) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, func(s *setup) { s.limits.LoginTimeout = 300 * time.Millisecond })
			c := e.connect()
			talk(c)
			rest, err := io.ReadAll(c.R)
			if err != nil {
				t.Fatal(err)
			}
			if s := string(rest); s != "BYE \"Disconnected for inactivity.\"\r\n" {
				t.Fatalf("got %q before the close", s)
			}
		})
	}
}

// TestBackendRefusalIsPenalized: a password the backend refuses counts
// against the client's address like one the passdb refuses; a backend
// that is down does not.
func TestBackendRefusalIsPenalized(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		opt     func(*setup)
		want    string
		penalty bool
	}{
		{"refused", backendAnswer(`NO "Authentication failed."`), authFailed, true},
		{"trylater", backendAnswer(`NO (TRYLATER) "Later."`), tryLater, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, tc.opt, func(s *setup) { s.pipeline.Penalty = &gateway.Penalty{Max: 15 * time.Second} })
			c := e.connect()
			c.Do(authPlain("bob", "secret"), tc.want)
			if got := e.pipeline.Penalty.Wait(netip.MustParseAddr("127.0.0.1")) > 0; got != tc.penalty {
				t.Fatalf("penalized: %v, want %v", got, tc.penalty)
			}
		})
	}
}
