// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

func certFor(t *testing.T, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: names[0]}, DNSNames: names,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestPresentedCert: the certificate tls-server-end-point binds to is the
// one the client was shown: the only one, or the SNI name's.
func TestPresentedCert(t *testing.T) {
	a, b := certFor(t, "imap.example.org"), certFor(t, "mail.example.net", "*.example.net")
	cfg := &tls.Config{Certificates: []tls.Certificate{a, b}}
	for _, tc := range []struct {
		sni  string
		want tls.Certificate
	}{
		{"", a}, {"imap.example.org", a}, {"mail.example.net", b}, {"pop.example.net", b}, {"other.example.com", a},
	} {
		if got := presentedCert(cfg, tc.sni); string(got) != string(tc.want.Certificate[0]) {
			t.Errorf("SNI %q: not the certificate Go presents", tc.sni)
		}
	}
	if got := presentedCert(&tls.Config{Certificates: []tls.Certificate{b}}, "imap.example.org"); string(got) != string(b.Certificate[0]) {
		t.Error("a single certificate is presented whatever the name")
	}
	if presentedCert(nil, "x") != nil || presentedCert(&tls.Config{}, "x") != nil {
		t.Error("a certificate from nowhere")
	}
}
