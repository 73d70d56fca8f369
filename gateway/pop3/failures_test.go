// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
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

func backendGreeting(g string) func(*setup) {
	return func(s *setup) { s.backend.greeting = g }
}

// TestLoginFailures: each kind of failure has its fixed reply, the session
// goes on, and nothing but a definitive "no" reads as a wrong password
// ([AUTH], RFC 3206).
func TestLoginFailures(t *testing.T) {
	t.Parallel()
	const inUse = "-ERR [IN-USE] Mailbox is locked by another POP3 session."
	for _, tc := range []struct {
		name    string
		opt     func(*setup)
		want    string
		backend bool // whether the backend is contacted
	}{
		{"backend says AUTH", backendAnswer(authFailed), authFailed, true},
		{"backend says plain -ERR", backendAnswer("-ERR Login failed."), authFailed, true},
		{"backend says bare -ERR", backendAnswer("-ERR"), authFailed, true},
		// The mailbox is locked by another session: the backend's own
		// text, never [AUTH].
		{"backend says IN-USE", backendAnswer(inUse), inUse, true},
		{"backend says in-use in lower case", backendAnswer("-ERR [in-use] Locked."), "-ERR [in-use] Locked.", true},
		{"backend says IN-USE with a control character", backendAnswer("-ERR [IN-USE] Locked\x01."), "-ERR [IN-USE] Locked .", true},
		{"backend says SYS/TEMP", backendAnswer("-ERR [SYS/TEMP] Try later."), tempFail, true},
		{"backend says SYS/PERM", backendAnswer("-ERR [SYS/PERM] Oops."), tempFail, true},
		{"backend says neither +OK nor -ERR", backendAnswer("* what"), internalError, true},
		{"backend refuses USER", func(s *setup) { s.backend.userAnswer = "-ERR [AUTH] No." }, authFailed, true},
		{"backend refuses USER with SYS/TEMP", func(s *setup) { s.backend.userAnswer = "-ERR [SYS/TEMP] Later." }, tempFail, true},
		{"backend hangs up during login", backendAnswer(""), tempFail, true},
		{"backend greets with -ERR", backendGreeting("-ERR Too busy"), tempFail, true},
		{"backend greets with nonsense", backendGreeting("* OK IMAP here"), tempFail, true},
		{"backend port closed", func(s *setup) { s.pipeline.Ports["pop3"] = gatewaytest.ClosedPort(t) }, tempFail, false},
		{"passdb temporary failure", passdbAnswer(auth.Result{}, auth.Temporary("passdb fake", errors.New("db down"))), tempFail, false},
		{"passdb unclassified error", passdbAnswer(auth.Result{}, errors.New("eh")), tempFail, false},
		{"passdb internal failure", passdbAnswer(auth.Result{}, auth.Internal("passdb fake", errors.New("bad config"))), internalError, false},
		{"passdb unknown user", passdbAnswer(auth.Result{Status: auth.StatusUserUnknown}, nil), authFailed, false},
		{"passdb password mismatch", passdbAnswer(auth.Result{Status: auth.StatusPasswordMismatch}, nil), authFailed, false},
		{"static password mismatch", withArgs("proxy=y password=x"), authFailed, false},
		{"nologin with reason", withArgs("proxy=y nopassword=y nologin reason=Moved"), "-ERR [AUTH] Moved", false},
		{"nologin without reason", withArgs("proxy=y nopassword=y nologin"), authFailed, false},
		{"nologin with a code in the reason", passdbAnswer(auth.Result{Status: auth.StatusOK,
			Fields: auth.Fields{"nologin": "y", "reason": "[IN-USE] Being moved."}}, nil), "-ERR [IN-USE] Being moved.", false},
		{"nologin reason with CRLF", passdbAnswer(auth.Result{Status: auth.StatusOK,
			Fields: auth.Fields{"nologin": "y", "reason": "Moved\r\n+OK injected"}}, nil), "-ERR [AUTH] Moved  +OK injected", false},
		{"passdb disabled status", passdbAnswer(auth.Result{Status: auth.StatusUserDisabled}, nil), authFailed, false},
		{"passdb bad port field", passdbAnswer(auth.Result{Status: auth.StatusOK, Fields: auth.Fields{"port": "pop3"}}, nil), internalError, false},
		{"passdb bad proxy_timeout field", passdbAnswer(auth.Result{Status: auth.StatusOK, Fields: auth.Fields{"proxy_timeout": "soon"}}, nil), internalError, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, tc.opt)
			c := e.connect()
			c.login("bob", "secret", tc.want)
			c.Do("CAPA", capaLocal...)
			if got := e.backend.connections() > 0; got != tc.backend {
				t.Fatalf("backend contacted: %v, want %v", got, tc.backend)
			}
		})
	}
}

// TestInUseRetry: an [IN-USE] refusal leaves the session usable, and the
// same client logs in once the mailbox is free.
func TestInUseRetry(t *testing.T) {
	t.Parallel()
	var served atomic.Bool
	e := start(t, func(s *setup) {
		s.backend.answer = func(string, string, string) string {
			if !served.Swap(true) {
				return "-ERR [IN-USE] Mailbox is locked by another POP3 session."
			}
			return fakeOK
		}
	})
	c := e.connect()
	c.login("bob", "secret", "-ERR [IN-USE] Mailbox is locked by another POP3 session.")
	c.login("bob", "secret", fakeOK)
	c.Do("STAT", "+OK fake STAT")
}

// TestStaticPassword: the right password passes the passdb and reaches
// the backend.
func TestStaticPassword(t *testing.T) {
	t.Parallel()
	e := start(t, withArgs("proxy=y password={PLAIN}x"))
	c := e.connect()
	c.login("bob", "y", authFailed)
	c.login("bob", "x", fakeOK)
	e.backend.expectReceived(t, anyXCLIENT, "USER bob", "PASS x")
}

// TestProxyLoop: a target that is the gateway itself is refused.
func TestProxyLoop(t *testing.T) {
	t.Parallel()
	port := gatewaytest.ClosedPort(t)
	e := start(t, func(s *setup) {
		s.listener.Address = "127.0.0.1:" + strconv.Itoa(port)
		s.pipeline.Self = []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))}
		s.pipeline.Ports["pop3"] = port
	})
	c := e.connect()
	c.login("bob", "secret", internalError)
	c.Do("CAPA", capaLocal...)
}

func TestTooManyAuthFailures(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.login("bob", "wrong", authFailed)
	c.Do("CAPA", capaLocal...)
	c.login("bob", "wrong", authFailed)
	c.Do("USER bob", "+OK")
	c.Do("PASS wrong", authFailed, "-ERR Too many authentication failures.")
	c.ExpectClosed()
}

// TestTemporaryFailuresCount: temporary failures count as failed logins
// too (a client cannot retry forever), but never read as a wrong password.
func TestTemporaryFailuresCount(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) { s.pipeline.Ports["pop3"] = gatewaytest.ClosedPort(t) })
	c := e.connect()
	c.login("bob", "secret", tempFail)
	c.Do("AUTH PLAIN "+b64("\x00bob\x00secret"), tempFail)
	c.login("bob", "secret", tempFail)
	c.Expect("-ERR Too many authentication failures.")
	c.ExpectClosed()
}

func TestTooManyBadCommands(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("NOOP", unknownCommand)
	c.Do("CAPA", capaLocal...)
	c.Do("PASS x", "-ERR No username given.")
	c.Do("STAT", unknownCommand, "-ERR Too many invalid bad commands.")
	c.ExpectClosed()
}

func TestGarbage(t *testing.T) {
	t.Parallel()
	for _, line := range []string{"NOOP\x00", "\x00", "USER bob\x00", "PASS se\x00cret", "\xff\xfe USER", "\x16\x03\x01\x02\x00\x01\x00", "US\tER bob"} {
		t.Run(strconv.Quote(line), func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			c.Do(line, "-ERR Garbage received.")
			c.ExpectClosed()
			e.backend.expectUntouched(t)
		})
	}
}

// TestGarbageInAuth: NUL in an AUTH response line is not base64.
func TestGarbageInAuth(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("AUTH PLAIN", "+ ")
	c.Do("AG\x00Jv", "-ERR [AUTH] Invalid base64 in response")
	e.backend.expectUntouched(t)
}

func TestLineLength(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	// 8190 bytes and CRLF fill the 8192-byte line buffer exactly.
	c.Do("USER "+strings.Repeat("x", 8190-len("USER ")), "+OK")
	c.Do("PASS "+strings.Repeat("x", 9000), "-ERR Too long command line.")
	c.ExpectClosed()
	e.backend.expectUntouched(t)
}

// TestLoginTimeout: a client that does not log in in time is disconnected,
// whether idle or in the middle of a command.
func TestLoginTimeout(t *testing.T) {
	t.Parallel()
	for name, talk := range map[string]func(c *client){
		"idle":         func(c *client) {},
		"after USER":   func(c *client) { c.Do("USER bob", "+OK") },
		"partial line": func(c *client) { c.Write("USE") },
		"in an AUTH":   func(c *client) { c.Do("AUTH PLAIN", "+ ") },
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
			if s := string(rest); s != "-ERR Disconnected for inactivity.\r\n" {
				t.Fatalf("got %q before the close", s)
			}
		})
	}
}

// TestBackendTimeout: a backend that greets and then says nothing is
// bounded by the backend timeout, and that is temporary.
func TestBackendTimeout(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.pipeline.Timeout = 300 * time.Millisecond
		s.backend.mute = true
	})
	c := e.connect()
	c.login("bob", "secret", tempFail)
	c.Do("CAPA", capaLocal...)
	e.backend.expectReceived(t, anyXCLIENT, "USER bob")
}

// TestPenaltyOnlyForWrongPasswords: the backend's "wrong password" counts
// against the client's address (the gateway's brute-force penalty);
// [IN-USE] and [SYS/TEMP] do not, being nobody's guess.
func TestPenaltyOnlyForWrongPasswords(t *testing.T) {
	t.Parallel()
	e := start(t, func(s *setup) {
		s.pipeline.Penalty = &gateway.Penalty{Max: 4 * time.Second}
		s.backend.answer = func(_, pass, _ string) string {
			switch pass {
			case "locked":
				return "-ERR [IN-USE] Locked."
			case "temp":
				return "-ERR [SYS/TEMP] Later."
			case "wrong":
				return authFailed
			}
			return fakeOK
		}
	})
	client := netip.MustParseAddr("127.0.0.1")
	c := e.connect()
	c.login("bob", "locked", "-ERR [IN-USE] Locked.")
	c.login("bob", "temp", tempFail)
	if d := e.pipeline.Penalty.Wait(client); d != 0 {
		t.Fatalf("penalty %v after temporary failures, want none", d)
	}
	c = e.connect()
	c.login("bob", "wrong", authFailed)
	if d := e.pipeline.Penalty.Wait(client); d == 0 {
		t.Fatal("no penalty after a wrong password")
	}
}
