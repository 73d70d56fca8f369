// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"crypto/tls"
	"net"
	"testing"

	xscram "github.com/xdg-go/scram"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/internal/testtls"
)

// tlsStates makes one real TLS connection over loopback TCP with version
// and returns the server's and the client's view of it.
func tlsStates(t *testing.T, version uint16) (server, client *tls.ConnectionState) {
	t.Helper()
	serverCfg, clientCfg := testtls.Configs(t)
	serverCfg.MinVersion, serverCfg.MaxVersion = version, version
	clientCfg.MinVersion, clientCfg.MaxVersion = version, version
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		cs  tls.ConnectionState
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		sc := tls.Server(c, serverCfg)
		err = sc.Handshake()
		done <- result{sc.ConnectionState(), err}
		// Hold the connection until the client has its state too.
		sc.Read(make([]byte, 1))
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc := tls.Client(c, clientCfg)
	if err := cc.Handshake(); err != nil {
		t.Fatal(err)
	}
	cs := cc.ConnectionState()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.cs.Version != version || cs.Version != version {
		t.Fatalf("negotiated %x, want %x", cs.Version, version)
	}
	return &r.cs, &cs
}

func exporterBinding(t *testing.T, cs *tls.ConnectionState) xscram.ChannelBinding {
	t.Helper()
	cb, err := xscram.NewTLSExporterBinding(cs)
	if err != nil {
		t.Fatal(err)
	}
	return cb
}

func TestSCRAMPlus(t *testing.T) {
	srv13, cli13 := tlsStates(t, tls.VersionTLS13)
	srv12, cli12 := tlsStates(t, tls.VersionTLS12)
	_, otherCli13 := tlsStates(t, tls.VersionTLS13)
	_, otherCli12 := tlsStates(t, tls.VersionTLS12)
	if string(srv12.TLSUnique) != string(cli12.TLSUnique) || len(srv12.TLSUnique) == 0 {
		t.Fatal("no tls-unique on TLS 1.2")
	}
	db := scramUsers(t, "SCRAM-SHA-256", "SCRAM-SHA-1")
	endPoint := func(cs *tls.ConnectionState) xscram.ChannelBinding {
		cb, err := xscram.NewTLSServerEndpointBinding(cs)
		if err != nil {
			t.Fatal(err)
		}
		return cb
	}
	// The certificate each server presented, as the gateway finds it
	// (each connection here has its own).
	certOf := map[*tls.ConnectionState][]byte{srv13: cli13.PeerCertificates[0].Raw, srv12: cli12.PeerCertificates[0].Raw}
	for _, tc := range []struct {
		name string
		srv  *tls.ConnectionState
		cb   xscram.ChannelBinding
		want auth.Status
	}{
		{"TLS 1.3 tls-exporter", srv13, exporterBinding(t, cli13), auth.StatusOK},
		// RFC 5929 4.1, the client side computed by xdg-go/scram.
		{"TLS 1.3 tls-server-end-point", srv13, endPoint(cli13), auth.StatusOK},
		{"TLS 1.2 tls-server-end-point", srv12, endPoint(cli12), auth.StatusOK},
		{"TLS 1.2 tls-unique", srv12, xscram.NewTLSUniqueBinding(cli12.TLSUnique), auth.StatusOK},
		{"TLS 1.2 (EMS) tls-exporter", srv12, exporterBinding(t, cli12), auth.StatusOK},
		// The client binds to another connection: a man in the middle
		// relaying the exchange between two TLS sessions.
		{"other connection's exporter", srv13, exporterBinding(t, otherCli13), auth.StatusPasswordMismatch},
		{"other connection's tls-unique", srv12, xscram.NewTLSUniqueBinding(otherCli12.TLSUnique), auth.StatusPasswordMismatch},
		{"exporter of a TLS 1.2 connection on TLS 1.3", srv13, exporterBinding(t, cli12), auth.StatusPasswordMismatch},
	} {
		for _, h := range []string{"SHA-1", "SHA-256"} {
			info := stubInfo(db)
			info.TLS, info.ServerCert = tc.srv, certOf[tc.srv]
			s := NewSCRAM(h, true, info)
			conv := newSCRAMClient(t, h, "plain", "secret", "").NewConversationWithChannelBinding(tc.cb)
			r := runSCRAM(t, s, conv)
			if r.err != nil || r.out.Auth.Status != tc.want || !r.out.Checked {
				t.Errorf("%s %s: %+v", tc.name, h, r)
			}
			if tc.want == auth.StatusOK && !r.valid {
				t.Errorf("%s %s: the client rejected the server", tc.name, h)
			}
			if tc.want != auth.StatusOK && !r.afterFinal {
				t.Errorf("%s %s: failed before the proof", tc.name, h)
			}
		}
	}

	// Channel bindings this connection cannot give fail at once.
	for _, tc := range []struct {
		name  string
		srv   *tls.ConnectionState
		first string
	}{
		{"tls-unique on TLS 1.3", srv13, "p=tls-unique,,n=plain,r=abc"},
		{"tls-server-end-point, the certificate not known", srv13, "p=tls-server-end-point,,n=plain,r=abc"},
		{"unknown type", srv12, "p=x-made-up,,n=plain,r=abc"},
		{"cleartext", nil, "p=tls-exporter,,n=plain,r=abc"},
		{"state without a handshake", &tls.ConnectionState{}, "p=tls-exporter,,n=plain,r=abc"},
		{"state without a handshake, tls-unique", &tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS12}, "p=tls-unique,,n=plain,r=abc"},
	} {
		info := stubInfo(db)
		info.TLS = tc.srv
		s := NewSCRAM("SHA-256", true, info)
		_, done, err := s.Next([]byte(tc.first))
		if err != nil || !done || !s.Outcome().Checked || s.Outcome().Auth.Status == auth.StatusOK {
			t.Errorf("%s: %v %v %+v", tc.name, done, err, s.Outcome())
		}
	}
	// A hand-made state claiming a finished handshake has no exporter.
	if _, ok := channelBinding(&tls.ConnectionState{HandshakeComplete: true, Version: tls.VersionTLS13}, nil, "tls-exporter"); ok {
		t.Error("exporter of a hand-made state")
	}
}

// TestSCRAMDowngrade: RFC 5802 section 6's "y" flag.
func TestSCRAMDowngrade(t *testing.T) {
	srv, _ := tlsStates(t, tls.VersionTLS13)
	db := scramUsers(t, "SCRAM-SHA-256", "SCRAM-SHA-1")
	client := newSCRAMClient(t, "SHA-256", "plain", "secret", "")

	// On TLS we offer -PLUS, so a client that could bind and believes we
	// cannot has had -PLUS removed from its view: fail.
	info := stubInfo(db)
	info.TLS = srv
	s := NewSCRAM("SHA-256", false, info)
	r := runSCRAM(t, s, client.NewConversationAdvertisingChannelBinding())
	if r.err != nil || r.out.Auth.Status == auth.StatusOK || !r.out.Checked || r.serverFirst != "" {
		t.Fatalf("y on TLS: %+v", r)
	}
	// On cleartext there is nothing to bind to: "y" is fine, and so is
	// "n" on TLS.
	r = runSCRAM(t, NewSCRAM("SHA-256", false, stubInfo(db)), client.NewConversationAdvertisingChannelBinding())
	if r.err != nil || r.out.Auth.Status != auth.StatusOK {
		t.Fatalf("y on cleartext: %+v", r)
	}
	r = runSCRAM(t, NewSCRAM("SHA-256", false, info), client.NewConversation())
	if r.err != nil || r.out.Auth.Status != auth.StatusOK {
		t.Fatalf("n on TLS: %+v", r)
	}
}
