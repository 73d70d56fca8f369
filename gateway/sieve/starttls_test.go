// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/internal/gatewaytest"
	"github.com/maildirector/maildirector/internal/testtls"
)

func withTLS(mode gateway.TLSMode, cfg *tls.Config) func(*setup) {
	return func(s *setup) { s.listener.TLSMode, s.listener.TLSConfig = mode, cfg }
}

// starttls runs STARTTLS and the client's handshake; the capabilities
// that follow are the caller's to expect.
func (c *client) starttls(cfg *tls.Config) {
	c.T.Helper()
	c.Do("STARTTLS", `OK "Begin TLS negotiation now."`)
	if n := c.R.Buffered(); n > 0 {
		c.T.Fatalf("%d bytes after the STARTTLS reply", n)
	}
	tc := tls.Client(c.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.T.Fatalf("TLS handshake: %v", err)
	}
	c.Conn, c.R = tc, bufio.NewReader(tc)
}

const tlsOK = `OK "TLS negotiation successful."`

// TestStartTLS: after the handshake the capabilities come again, unasked
// (RFC 5804 2.2), without STARTTLS; a client may resynchronise with a
// NOOP tag as sieve-connect does.
func TestStartTLS(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.dial("")
	c.Expect(greeting("PLAIN LOGIN", true, false)...)
	c.Do("CAPABILITY", append(capLines("PLAIN LOGIN", true, false), capabilityOK)...)
	c.starttls(cliCfg)
	c.Expect(append(capLines("PLAIN LOGIN", false, false), tlsOK)...)
	c.Do(`NOOP "STARTTLS-RESYNC-CAPA"`, `OK (TAG "STARTTLS-RESYNC-CAPA") "Done"`)
	c.Do("STARTTLS", `NO "TLS is already active."`)
	c.Do(authPlain("bob", "secret"), fakeOK)
	// TLS on the client side, plain TCP to the backend.
	c.Do("LISTSCRIPTS", `OK "fake LISTSCRIPTS"`)
	c.Do("LOGOUT", `OK "fake LOGOUT"`)
	c.ExpectClosed()
	e.backend.expectReceived(t, anyXCLIENT, plainLogin("bob", "secret"), "LISTSCRIPTS", "LOGOUT")
}

// TestStartTLSSecures: a client that may not use PLAIN in cleartext may
// after STARTTLS, and the passdb hears that the connection is TLS.
func TestStartTLSSecures(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.dial("127.0.0.2")
	c.Expect(greeting("", true, false)...)
	c.Do(authPlain("bob", "secret"), encryptNeeded)
	c.starttls(cliCfg)
	c.Expect(append(capLines("PLAIN LOGIN", false, false), tlsOK)...)
	c.Do(authPlain("bob", "secret"), fakeOK)
	c.Do("NOOP", `OK "fake NOOP"`)
	e.backend.expectReceived(t, xclientLine("127.0.0.2", localPort(c), 4), plainLogin("bob", "secret"), "NOOP")
}

// TestStartTLSInjection: commands pipelined after STARTTLS in cleartext
// must not run, before or after the handshake.
func TestStartTLSInjection(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.dial("")
	c.Expect(greeting("PLAIN LOGIN", true, false)...)
	c.Write("STARTTLS\r\n" + authPlain("bob", "secret") + "\r\n")
	c.Expect(`OK "Begin TLS negotiation now."`)
	c.ExpectClosed()
	if n := e.backend.connections(); n != 0 {
		t.Fatalf("backend got %d connections, want 0", n)
	}
}

func TestStartTLSNotOffered(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testtls.Configs(t)
	// A certificate without the STARTTLS mode, and the mode without a
	// certificate: neither offers STARTTLS.
	for name, opt := range map[string]func(*setup){
		"no mode":        withTLS(gateway.TLSNone, srvCfg),
		"no certificate": withTLS(gateway.TLSStartTLS, nil),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, opt)
			c := e.connect()
			c.Do("STARTTLS", `NO "TLS support isn't enabled."`)
			c.Do("NOOP", noopOK)
		})
	}
}

func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSImplicit, srvCfg))
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}, Config: cliCfg}
	conn, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := e.wrap(conn)
	// From 127.0.0.2, yet secured by TLS; no STARTTLS on a TLS connection.
	c.Expect(greeting("PLAIN LOGIN", false, false)...)
	c.Do("STARTTLS", `NO "TLS is already active."`)
	c.Do(authPlain("bob", "secret"), fakeOK)
	c.Do("NOOP", `OK "fake NOOP"`)
	e.backend.expectReceived(t, xclientLine("127.0.0.2", localPort(c), 4), plainLogin("bob", "secret"), "NOOP")
}

// TestImplicitTLSHandshakeFailure: a cleartext client on the TLS port gets
// nothing it could mistake for ManageSieve, and the listener goes on.
func TestImplicitTLSHandshakeFailure(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSImplicit, srvCfg))
	c := e.dial("")
	c.Write(authPlain("bob", "secret") + "\r\n")
	if rest, _ := io.ReadAll(c.R); strings.Contains(string(rest), "OK") {
		t.Fatalf("cleartext client got %q", rest)
	}
	conn, err := tls.Dial("tcp", e.addr, cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	e.wrap(conn).Expect(greeting("PLAIN LOGIN", false, false)...)
}

// withBackendTLS makes the fake backend offer STARTTLS with its own
// certificate and the passdb ask for it (starttls=value); the pipeline
// trusts the certificate when trust is set.
func withBackendTLS(t testing.TB, value string, trust bool) func(*setup) {
	srvCfg, cliCfg := testtls.Configs(t)
	return func(s *setup) {
		s.backend.tlsConfig = srvCfg
		s.pipeline.Passdb = gatewaytest.StaticChain(t, "proxy=y nopassword=y starttls="+value)
		if trust {
			s.pipeline.TLSConfig = cliCfg
		}
	}
}

// TestBackendStartTLS: starttls=yes runs STARTTLS on the backend before
// XCLIENT and the login, which then travel encrypted.
func TestBackendStartTLS(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]func(*setup){
		"verified": withBackendTLS(t, "yes", true),
		"any-cert": withBackendTLS(t, "any-cert", false),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, opt)
			c := e.connect()
			c.Do(authPlain("bob", "secret"), fakeOK)
			c.Do("LISTSCRIPTS", `OK "fake LISTSCRIPTS"`)
			e.backend.expectReceived(t, "STARTTLS", anyXCLIENT, plainLogin("bob", "secret"), "LISTSCRIPTS")
		})
	}
}

// TestBackendStartTLSFailures: a backend that cannot do what starttls=yes
// asks is a configuration problem, not a wrong password.
func TestBackendStartTLSFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opt  func(*setup)
		want string
	}{
		{"certificate not trusted", withBackendTLS(t, "yes", false), internalError},
		{"STARTTLS not offered", func(s *setup) {
			s.pipeline.Passdb = gatewaytest.StaticChain(t, "proxy=y nopassword=y starttls=yes")
		}, internalError},
		{"handshake fails", func(s *setup) {
			withBackendTLS(t, "yes", true)(s)
			s.backend.tlsConfig = &tls.Config{} // no certificate
		}, tryLater},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, tc.opt)
			c := e.connect()
			c.Do(authPlain("bob", "secret"), tc.want)
			c.Do("NOOP", noopOK)
			for _, cmd := range e.backend.received() {
				if strings.HasPrefix(cmd, "AUTHENTICATE") {
					t.Fatalf("the login went to the backend: %q", e.backend.received())
				}
			}
		})
	}
}
