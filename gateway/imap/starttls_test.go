// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/internal/testtls"
)

func withTLS(mode gateway.TLSMode, cfg *tls.Config) func(*setup) {
	return func(s *setup) { s.listener.TLSMode, s.listener.TLSConfig = mode, cfg }
}

// starttls runs STARTTLS and the client's handshake.
func (c *client) starttls(tag string, cfg *tls.Config) {
	c.T.Helper()
	c.Do(tag+" STARTTLS", tag+" OK Begin TLS negotiation now.")
	if n := c.R.Buffered(); n > 0 {
		c.T.Fatalf("%d bytes after the STARTTLS reply", n)
	}
	tc := tls.Client(c.Conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.T.Fatalf("TLS handshake: %v", err)
	}
	c.Conn, c.R = tc, bufio.NewReader(tc)
}

const greetingStartTLS = "* OK [CAPABILITY " + preCaps + " STARTTLS AUTH=PLAIN AUTH=LOGIN] maildirector ready."

func TestStartTLS(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.dial("")
	c.Expect(greetingStartTLS)
	c.Do("a1 CAPABILITY", "* CAPABILITY "+preCaps+" STARTTLS AUTH=PLAIN AUTH=LOGIN", "a1 OK ...")
	c.starttls("a2", cliCfg)
	c.Do("a3 CAPABILITY", "* CAPABILITY "+preCaps+" AUTH=PLAIN AUTH=LOGIN", "a3 OK ...")
	c.Do("a4 STARTTLS", "a4 BAD TLS is already active.")
	c.Do("a5 LOGIN bob secret", "a5 "+fakeOK)
	// TLS on the client side, plain TCP to the backend.
	c.Do("a6 SELECT INBOX", "a6 OK fake SELECT")
	c.Do("a7 LOGOUT", "* BYE fake", "a7 OK fake LOGOUT")
	c.ExpectClosed()
	e.backend.expectReceived(t, anyID, `L LOGIN "bob" "secret"`, "a6 SELECT INBOX", "a7 LOGOUT")
}

// TestStartTLSSecures: a client that may not log in in cleartext may after
// STARTTLS, and the passdb hears that the connection is TLS.
func TestStartTLSSecures(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.dial("127.0.0.2")
	c.Expect("* OK [CAPABILITY " + preCaps + " STARTTLS LOGINDISABLED] maildirector ready.")
	c.Do("a1 LOGIN bob secret", plaintextAlert, "a1 "+privacyRequired)
	c.starttls("a2", cliCfg)
	c.Do("a3 CAPABILITY", "* CAPABILITY "+preCaps+" AUTH=PLAIN AUTH=LOGIN", "a3 OK ...")
	c.Do("a4 AUTHENTICATE PLAIN "+b64("\x00bob\x00secret"), "a4 "+fakeOK)
	c.Do("a5 NOOP", "a5 OK fake NOOP")
	e.backend.expectReceived(t, "~"+idLine("127.0.0.2", localPort(c), e.addr, 4).String(), `L LOGIN "bob" "secret"`, "a5 NOOP")
}

// TestStartTLSInjection: commands pipelined after STARTTLS in cleartext
// must not run, before or after the handshake.
func TestStartTLSInjection(t *testing.T) {
	t.Parallel()
	srvCfg, _ := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSStartTLS, srvCfg))
	c := e.dial("")
	c.Expect(greetingStartTLS)
	c.Write("a1 STARTTLS\r\na2 LOGIN bob secret\r\n")
	c.Expect("a1 OK Begin TLS negotiation now.")
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
			c.Do("a1 STARTTLS", "a1 BAD TLS support isn't enabled.")
			c.Do("a2 NOOP", "a2 OK NOOP completed.")
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
	c.Expect(greetingLocal)
	c.Do("a1 STARTTLS", "a1 BAD TLS is already active.")
	c.Do("a2 LOGIN bob secret", "a2 "+fakeOK)
	c.Do("a3 NOOP", "a3 OK fake NOOP")
	e.backend.expectReceived(t, anyID, `L LOGIN "bob" "secret"`, "a3 NOOP")
}

// TestImplicitTLSHandshakeFailure: a cleartext client on the TLS port gets
// nothing it could mistake for IMAP, and the listener goes on serving.
func TestImplicitTLSHandshakeFailure(t *testing.T) {
	t.Parallel()
	srvCfg, cliCfg := testtls.Configs(t)
	e := start(t, withTLS(gateway.TLSImplicit, srvCfg))
	c := e.dial("")
	c.Write("a1 LOGIN bob secret\r\n")
	// The gateway may send a TLS alert; then it closes.
	if rest, _ := io.ReadAll(c.R); strings.Contains(string(rest), "OK") {
		t.Fatalf("cleartext client got %q", rest)
	}
	conn, err := tls.Dial("tcp", e.addr, cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	e.wrap(conn).Expect(greetingLocal)
}
