// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
)

// selfSigned is a certificate for 127.0.0.1 nobody trusts.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestTLS: a client may STARTTLS before authenticating; a backend is
// reached with STARTTLS or implicit TLS when the passdb says so
// (starttls=, ssl=), as Dovecot's doveadm proxy does.
func TestTLS(t *testing.T) {
	cert := selfSigned(t)
	e := startGateway(t, func(_ *Server, l *gateway.Listener) {
		l.TLSMode, l.TLSConfig = gateway.TLSStartTLS, cert
	})
	e.a.configure(func(f *fakeDoveadm) { f.tls = cert })
	e.b.configure(func(f *fakeDoveadm) { f.tls, f.implicit = cert, true })
	srv := e.listener.Handler.(*Server)
	lookup := srv.Lookup
	srv.Lookup = lookupFunc(func(ctx context.Context, req *auth.Request) (auth.Result, error) {
		res, err := lookup.Lookup(ctx, req)
		switch {
		case strings.HasPrefix(req.User, "alice"):
			res.Fields["starttls"] = "any-cert"
		case strings.HasPrefix(req.User, "bob"):
			res.Fields["ssl"] = "any-cert"
		case strings.HasPrefix(req.User, "astrict"):
			res.Fields["starttls"] = "yes"
		}
		return res, err
	})
	c, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	io.WriteString(c, "VERSION\tdoveadm-server\t1\t2\n")
	r := bufio.NewReader(c)
	for _, want := range []string{"VERSION\tdoveadm-client\t1\t2\n", "-\n"} {
		if l, _ := r.ReadString('\n'); l != want {
			t.Fatalf("got %q, want %q", l, want)
		}
	}
	io.WriteString(c, "STARTTLS\n")
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(tc, "PLAIN\t%s\n", base64.StdEncoding.EncodeToString([]byte("\x00doveadm\x00"+testPassword)))
	tr := bufio.NewReader(tc)
	if l, _ := tr.ReadString('\n'); l != "+\n" {
		t.Fatalf("after STARTTLS: %q", l)
	}
	cl := &tclient{t: t, c: tc, r: tr, mux: true, d: &demux{r: tr, mux: true}}
	cl.expect("\talice\tfetch", "A\talice\t", "*", "+")
	cl.expect("\tbob\tfetch", "B\tbob\t", "*", "+")
	// A certificate that does not verify is a configuration matter.
	cl.expect("\tastrict\tfetch", "", "\x04"+errBackendSetup.text+"\n", "-TEMPFAIL")
	if got := e.a.lines(); len(got) < 2 || got[0] != "(TLS)" {
		t.Fatalf("A got %q", got)
	}
}
