// SPDX-License-Identifier: Apache-2.0

package imap

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

func backendGreeting(g string) func(*setup) {
	return func(s *setup) { s.backend.greeting = g }
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
		{"backend says AUTHENTICATIONFAILED", backendAnswer("NO [AUTHENTICATIONFAILED] Authentication failed."), authFailed, true},
		{"backend says plain NO", backendAnswer("NO Login failed."), authFailed, true},
		{"backend says UNAVAILABLE", backendAnswer("NO [UNAVAILABLE] Maintenance, try later."), unavailable, true},
		{"backend says SERVERBUG", backendAnswer("NO [SERVERBUG] Oops."), unavailable, true},
		// A backend's limit is the client's limit (RFC 5530: do not retry
		// at once); Dovecot's user+IP refusal is one whatever its code,
		// and the backend counts every gateway's sessions of the user.
		{"backend says LIMIT", backendAnswer("NO [LIMIT] Too many sessions."), "NO [LIMIT] Too many sessions.", true},
		{"backend's user+IP limit", backendAnswer("NO [UNAVAILABLE] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)"),
			"NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=10)", true},
		{"backend says INUSE", backendAnswer("NO [INUSE] Mailbox in use."), unavailable, true},
		{"backend says CONTACTADMIN", backendAnswer("NO [CONTACTADMIN] Call us."), unavailable, true},
		{"backend says BAD", backendAnswer("BAD Syntax error."), serverBug, true},
		{"backend hangs up during login", backendAnswer(""), unavailable, true},
		{"backend greets with BYE", backendGreeting("* BYE Too busy"), unavailable, true},
		{"backend greets with PREAUTH", backendGreeting("* PREAUTH [CAPABILITY IMAP4rev1] welcome"), unavailable, true},
		{"backend greets with a broken CAPABILITY", backendGreeting("* OK [CAPABILITY IMAP4rev1"), unavailable, true},
		{"backend port closed", func(s *setup) { s.pipeline.Ports["imap"] = gatewaytest.ClosedPort(t) }, unavailable, false},
		{"passdb temporary failure", passdbAnswer(auth.Result{}, auth.Temporary("passdb fake", errors.New("db down"))), unavailable, false},
		{"passdb unclassified error", passdbAnswer(auth.Result{}, errors.New("eh")), unavailable, false},
		{"passdb internal failure", passdbAnswer(auth.Result{}, auth.Internal("passdb fake", errors.New("bad config"))), serverBug, false},
		{"passdb unknown user", passdbAnswer(auth.Result{Status: auth.StatusUserUnknown}, nil), authFailed, false},
		{"passdb password mismatch", passdbAnswer(auth.Result{Status: auth.StatusPasswordMismatch}, nil), authFailed, false},
		{"static password mismatch", withArgs("proxy=y password=x"), authFailed, false},
		{"nologin with reason", withArgs("proxy=y nopassword=y nologin reason=Moved"), "NO [ALERT] Moved", false},
		{"nologin without reason", withArgs("proxy=y nopassword=y nologin"), authFailed, false},
		{"nologin with a code in the reason", passdbAnswer(auth.Result{Status: auth.StatusOK,
			Fields: auth.Fields{"nologin": "y", "reason": "[INUSE] Being moved."}}, nil), "NO [INUSE] Being moved.", false},
		{"nologin reason with CRLF", passdbAnswer(auth.Result{Status: auth.StatusOK,
			Fields: auth.Fields{"nologin": "y", "reason": "Moved\r\nz OK injected"}}, nil), "NO [ALERT] Moved  z OK injected", false},
		{"passdb disabled status", passdbAnswer(auth.Result{Status: auth.StatusUserDisabled}, nil), authFailed, false},
		{"passdb bad port field", passdbAnswer(auth.Result{Status: auth.StatusOK, Fields: auth.Fields{"port": "imap"}}, nil), serverBug, false},
		{"passdb bad proxy_timeout field", passdbAnswer(auth.Result{Status: auth.StatusOK, Fields: auth.Fields{"proxy_timeout": "soon"}}, nil), serverBug, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, tc.opt)
			c := e.connect()
			c.Do("a1 LOGIN bob secret", "a1 "+tc.want)
			c.Do("a2 NOOP", "a2 OK NOOP completed.")
			if got := e.backend.connections() > 0; got != tc.backend {
				t.Fatalf("backend contacted: %v, want %v", got, tc.backend)
			}
		})
	}
}

// TestStaticPassword: the right password passes the passdb and reaches
// the backend.
func TestStaticPassword(t *testing.T) {
	t.Parallel()
	e := start(t, withArgs("proxy=y password={PLAIN}x"))
	c := e.connect()
	c.Do("a1 LOGIN bob y", "a1 "+authFailed)
	c.Do("a2 LOGIN bob x", "a2 "+fakeOK)
	e.backend.expectReceived(t, anyID, `L LOGIN "bob" "x"`)
}

// TestProxyLoop: a target that is the gateway itself is refused.
func TestProxyLoop(t *testing.T) {
	t.Parallel()
	for _, self := range []string{"127.0.0.1", "0.0.0.0"} {
		t.Run(self, func(t *testing.T) {
			t.Parallel()
			port := gatewaytest.ClosedPort(t)
			e := start(t, func(s *setup) {
				s.listener.Address = "127.0.0.1:" + strconv.Itoa(port)
				s.pipeline.Self = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr(self), uint16(port))}
				s.pipeline.Ports["imap"] = port
			})
			c := e.connect()
			c.Do("a1 LOGIN bob secret", "a1 "+serverBug)
			c.Do("a2 NOOP", "a2 OK NOOP completed.")
		})
	}
}

func TestTooManyAuthFailures(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("a1 LOGIN bob wrong", "a1 "+authFailed)
	c.Do("a2 NOOP", "a2 OK NOOP completed.")
	c.Do("a3 LOGIN bob wrong", "a3 "+authFailed)
	c.Do("a4 LOGIN bob wrong", "a4 "+authFailed, "* BYE Too many authentication failures.")
	c.ExpectClosed()
}

// TestTemporaryFailuresCount: temporary failures count as failed logins
// too (a client cannot retry forever), but never read as a wrong password.
func TestTemporaryFailuresCount(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.pipeline.Ports["imap"] = gatewaytest.ClosedPort(t) })
	c := e.connect()
	c.Do("a1 LOGIN bob secret", "a1 "+unavailable)
	c.Do("a2 AUTHENTICATE PLAIN "+b64("\x00bob\x00secret"), "a2 "+unavailable)
	c.Do("a3 LOGIN bob secret", "a3 "+unavailable, "* BYE Too many authentication failures.")
	c.ExpectClosed()
}

func TestTooManyBadCommands(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("a1 FOO", "a1 BAD Error in IMAP command received by server.")
	c.Do("a2 NOOP", "a2 OK NOOP completed.")
	c.Do("a3 LOGIN", "a3 BAD Error in IMAP command received by server.")
	c.Do("a4 SELECT INBOX", "* BYE Too many invalid IMAP commands.")
	c.ExpectClosed()
}

func TestGarbage(t *testing.T) {
	t.Parallel()
	for _, line := range []string{"a1 NOOP\x00", "\x00", "a1 LOGIN bob se\x00cret", "\xff\xfe NOOP", "\x16\x03\x01\x02\x00\x01\x00"} {
		t.Run(strconv.Quote(line), func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.Do(line, "* BYE Garbage received.")
			c.ExpectClosed()
		})
	}
}

func TestLineLength(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	// 8190 bytes and CRLF fill the 8192-byte line buffer exactly.
	c.Do("a1 NOOP "+strings.Repeat("x", 8190-len("a1 NOOP ")), "a1 OK NOOP completed.")
	c.Do("a2 NOOP "+strings.Repeat("x", 9000), "* BYE Too long command line.")
	c.ExpectClosed()
}

func TestLiteralLimits(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	// A synchronizing literal over the limit is refused before its bytes
	// are sent, so the session goes on.
	c.Do("a1 LOGIN bob {8193}", "a1 BAD Error in IMAP command: Literal too large (max 8192).")
	c.Do("a2 NOOP", "a2 OK NOOP completed.")
	// At the limit it is accepted.
	c.Do("a3 LOGIN bob {8192}", "+ OK")
	c.Do(strings.Repeat("p", 8192), "a3 "+fakeOK)
	e.backend.expectReceived(t, anyID, `L LOGIN "bob" "`+strings.Repeat("p", 8192)+`"`)

	// A non-synchronizing one over the limit cannot be skipped.
	c = e.connect()
	c.Do("b1 LOGIN bob {8193+}", "* BYE Literal too large.")
	c.ExpectClosed()
}

// TestLoginTimeout: a client that does not log in in time is disconnected,
// whether idle or in the middle of a command.
func TestLoginTimeout(t *testing.T) {
	t.Parallel()
	for name, talk := range map[string]func(c *client){
		"idle":               func(c *client) {},
		"after a command":    func(c *client) { c.Do("a NOOP", "a OK NOOP completed.") },
		"partial line":       func(c *client) { c.Write("a LOG") },
		"in a literal":       func(c *client) { c.Do("a LOGIN bob {6}", "+ OK"); c.Write("sec") },
		"in an AUTHENTICATE": func(c *client) { c.Do("a AUTHENTICATE PLAIN", "+ ") },
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
			// The farewell gets its own write deadline, so the client
			// hears why it was disconnected.
			if s := string(rest); s != "* BYE Disconnected for inactivity.\r\n" {
				t.Fatalf("got %q before the close", s)
			}
		})
	}
}

// TestLoginTimeoutEndsAuthWait: what a login waits for (a slow passdb, a
// queue for password checks) ends with the client's login time, so a
// client that has timed out holds no place in any queue.
func TestLoginTimeoutEndsAuthWait(t *testing.T) {
	t.Parallel()
	gaveUp := make(chan error, 1)
	e := start(t, func(s *setup) {
		s.limits.LoginTimeout = 300 * time.Millisecond
		s.pipeline.Passdb = gatewaytest.PassdbFunc(func(ctx context.Context, _ *auth.Request) (auth.Result, error) {
			select {
			case <-ctx.Done():
				gaveUp <- ctx.Err()
				return auth.Result{}, auth.Temporary("test passdb", ctx.Err())
			case <-time.After(time.Minute):
				gaveUp <- nil
				return auth.Result{Status: auth.StatusOK}, nil
			}
		})
	})
	c := e.connect()
	c.Write("a LOGIN bob secret\r\n")
	select {
	case err := <-gaveUp:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("the passdb's context ended with %v, want the login deadline", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the passdb was still waited for long after the login timeout")
	}
	if _, err := io.ReadAll(c.R); err != nil {
		t.Fatal(err)
	}
}
