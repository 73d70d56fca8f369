// SPDX-License-Identifier: Apache-2.0

package pop3

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

// stls runs STLS and the client's handshake.
func (c *client) stls(cfg *tls.Config) {
	c.T.Helper()
	c.Do("STLS", "+OK Begin TLS negotiation now.")
	if n := c.R.Buffered(); n > 0 {
		c.T.Fatalf("%d bytes after the STLS reply", n)
	}
	tc := tls.Client(c.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.T.Fatalf("TLS handshake: %v", err)
	}
	c.Conn, c.R = tc, bufio.NewReader(tc)
}

// capaWith is capaLocal with extra lines before USER.
func capaWith(extra ...string) []string {
	out := append([]string{}, capaLocal[:7]...)
	out = append(out, extra...)
	return append(out, capaLocal[7:]...)
}

func TestSTLS(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.connect()
	c.Do("CAPA", capaWith("STLS")...)
	c.stls(cliCfg)
	c.Do("CAPA", capaLocal...)
	c.Do("STLS", "-ERR TLS is already active.")
	c.login("bob", "secret", fakeOK)
	// TLS on the client side, plain TCP to the backend.
	c.Do("STAT", "+OK fake STAT")
	c.Do("QUIT", "+OK fake QUIT")
	c.ExpectClosed()
	e.backend.expectReceived(t, anyXCLIENT, "USER bob", "PASS secret", "STAT", "QUIT")
}

// TestSTLSSecures: a client that may not log in in cleartext may after
// STLS, and the passdb hears that the connection is TLS. A USER given
// before STLS is forgotten.
func TestSTLSSecures(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.dial("127.0.0.2")
	c.Expect(greeting)
	c.Do("CAPA", "+OK", "CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS", ".")
	c.Do("USER bob", privacyRequired)
	c.stls(cliCfg)
	c.Do("CAPA", capaLocal...)
	c.Do("PASS secret", "-ERR No username given.")
	c.Do("AUTH PLAIN "+b64("\x00bob\x00secret"), fakeOK)
	c.Do("LIST", "+OK fake LIST")
	e.backend.expectReceived(t, xclientLine("127.0.0.2", localPort(c), 4), "USER bob", "PASS secret", "LIST")
}

// TestSTLSForgetsUser: USER, STLS, PASS does not log in.
func TestSTLSForgetsUser(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.connect()
	c.Do("USER bob", "+OK")
	c.stls(cliCfg)
	c.Do("PASS secret", "-ERR No username given.")
	e.backend.expectUntouched(t)
}

// TestSTLSInjection: commands pipelined after STLS in cleartext must not
// run, before or after the handshake.
func TestSTLSInjection(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.connect()
	c.Write("STLS\r\nUSER bob\r\nPASS secret\r\n")
	c.Expect("+OK Begin TLS negotiation now.")
	c.ExpectClosed()
	e.backend.expectUntouched(t)
}

func TestSTLSNotOffered(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testtls.Configs(t)
	// A certificate without the STARTTLS mode, and the mode without a
	// certificate: neither offers STLS.
	for name, opt := range map[string]func(*setup){
		"no mode":        withTLS(gateway.TLSNone, srvCfg),
		"no certificate": withTLS(gateway.TLSStartTLS, nil),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := start(t, opt)
			c := e.connect()
			c.Do("CAPA", capaLocal...)
			c.Do("STLS", "-ERR TLS support isn't enabled.")
			c.login("bob", "secret", fakeOK)
		})
	}
}

// TestImplicitTLS: pop3s.
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
	// From 127.0.0.2, yet secured by TLS; no STLS on a TLS connection.
	c.Expect(greeting)
	c.Do("CAPA", capaLocal...)
	c.Do("STLS", "-ERR TLS is already active.")
	c.login("bob", "secret", fakeOK)
	c.Do("STAT", "+OK fake STAT")
	e.backend.expectReceived(t, xclientLine("127.0.0.2", localPort(c), 4), "USER bob", "PASS secret", "STAT")
}

// TestImplicitTLSHandshakeFailure: a cleartext client on the TLS port gets
// nothing it could mistake for POP3, and the listener goes on serving.
func TestImplicitTLSHandshakeFailure(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSImplicit, srvCfg))
	c := e.dial("")
	c.Write("USER bob\r\n")
	if rest, _ := io.ReadAll(c.R); strings.Contains(string(rest), "+OK") {
		t.Fatalf("cleartext client got %q", rest)
	}
	conn, err := tls.Dial("tcp", e.addr, cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	e.wrap(conn).Expect(greeting)
}

// TestBackendTLS: the passdb's starttls and ssl fields protect the
// backend connection; what can fail, and how it reads.
func TestBackendTLS(t *testing.T) {
	t.Parallel()
	beCfg, rootsCfg := testtls.Configs(t)
	trustBackend := func(s *setup) { s.pipeline.TLSConfig = rootsCfg.Clone() }
	offerSTLS := func(s *setup) { s.backend.tlsConfig = beCfg }
	implicit := func(s *setup) {
		s.backend.tlsConfig, s.backend.implicitTLS = beCfg, true
		s.pipeline.Ports["pop3s"] = s.backend.port()
		s.pipeline.Ports["pop3"] = gatewaytest.ClosedPort(t)
	}
	login := []string{"STLS", anyXCLIENT, "USER bob", "PASS secret", "STAT"}
	for _, tc := range []struct {
		name, args string
		opts       []func(*setup)
		want       string
		backend    []string // nil: not checked
	}{
		{"starttls=yes", "starttls=yes", []func(*setup){trustBackend, offerSTLS}, fakeOK, login},
		{"starttls=any-cert", "starttls=any-cert", []func(*setup){offerSTLS}, fakeOK, login},
		{"ssl=yes", "ssl=yes", []func(*setup){trustBackend, implicit}, fakeOK, login[1:]},
		{"ssl=any-cert", "ssl=any-cert", []func(*setup){implicit}, fakeOK, login[1:]},
		// A certificate that does not verify is our configuration's
		// matter, not a temporary failure.
		{"starttls=yes, unknown certificate", "starttls=yes", []func(*setup){offerSTLS}, internalError, nil},
		{"ssl=yes, unknown certificate", "ssl=yes", []func(*setup){implicit}, internalError, nil},
		{"starttls=yes, backend without STLS", "starttls=yes", []func(*setup){trustBackend}, internalError, []string{"STLS"}},
		{"ssl=yes, backend without TLS", "ssl=yes", []func(*setup){trustBackend, func(s *setup) {
			s.pipeline.Ports["pop3s"] = s.backend.port()
		}}, tempFail, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t, append([]func(*setup){withArgs("proxy=y nopassword=y " + tc.args)}, tc.opts...)...)
			c := e.connect()
			c.login("bob", "secret", tc.want)
			if tc.want == fakeOK {
				c.Do("STAT", "+OK fake STAT")
			} else {
				c.Do("CAPA", capaLocal...)
			}
			if tc.backend != nil {
				e.backend.expectReceived(t, tc.backend...)
			}
		})
	}
}
