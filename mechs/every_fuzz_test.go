// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"hash"
	"strings"
	"sync"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

// everyMechanism is the table the binary offers (cmd/maildirector).
var everyMechanism = []Mechanism{
	Plain, Login, CRAMMD5, DigestMD5,
	SCRAMSHA1, SCRAMSHA256, SCRAMSHA1Plus, SCRAMSHA256Plus,
	OAuthBearer, XOAuth2, External, Anonymous,
}

// fuzzConns are real TLS connections' server-side states for the -PLUS
// and EXTERNAL fuzzers: TLS 1.3 (tls-exporter), TLS 1.2 (tls-unique too),
// and another TLS 1.3 connection, whose binding a relaying man in the
// middle would present. The handshakes need a *testing.T, so the first
// input of each fuzzing process makes them.
var fuzzConns struct {
	once            sync.Once
	tls13, tls12    *tls.ConnectionState
	other13         *tls.ConnectionState
	withCertOfAlice *tls.ConnectionState // tls13 with a verified client certificate
}

func fuzzTLS(t *testing.T) {
	fuzzConns.once.Do(func() {
		fuzzConns.tls13, _ = tlsStates(t, tls.VersionTLS13)
		fuzzConns.tls12, _ = tlsStates(t, tls.VersionTLS12)
		fuzzConns.other13, _ = tlsStates(t, tls.VersionTLS13)
		// EXTERNAL reads only the verified peer certificate; a copy of a
		// real state keeps the exporter for SCRAM-PLUS.
		cert := &x509.Certificate{Subject: pkix.Name{CommonName: "alice"}, EmailAddresses: []string{"alice@example.org"}}
		cs := *fuzzConns.tls13
		cs.PeerCertificates, cs.VerifiedChains = []*x509.Certificate{cert}, [][]*x509.Certificate{{cert}}
		fuzzConns.withCertOfAlice = &cs
	})
	if fuzzConns.tls13 == nil {
		t.Fatal("no TLS connection to fuzz on")
	}
}

// FuzzSCRAMPlus is FuzzSCRAM for SCRAM-SHA-*-PLUS on real TLS 1.3 and 1.2
// connections: in final, "{r}" stands for the exchange's nonce and "{c}"
// for the right c= (the GS2 header and this connection's binding of the
// type client-first asked for). Nothing the fuzzer sends may succeed;
// whenever the server takes client-first, the right proof succeeds for
// alice, and the same proof bound to another connection fails.
func FuzzSCRAMPlus(f *testing.F) {
	for _, s := range []struct {
		first, final string
		tls12        bool
	}{
		{"p=tls-exporter,,n=alice,r=abc", "c={c},r={r},p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", false},
		{"p=tls-unique,,n=alice,r=abc", "c={c},r={r},p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", true},
		{"p=tls-exporter,,n=alice,r=abc", "c={c},r={r},p=AAAAAAAAAAAAAAAAAAAAAAAAAAA=", true},
		{"p=tls-unique,,n=alice,r=abc", "c={c},r={r},p=AAAA", false},
		{"p=tls-exporter,a=alice,n=alice,r=rOprNGfwEbeRWgbNEkqO,ext=1", "c={c},r={r},ext=x,p=AAAA", false},
		{"p=tls-server-end-point,,n=alice,r=abc", "c=biws,r={r},p=AAAA", false},
		{"p=tls-exporter,,n=nobody,r=abc", "c={c},r={r}x,p=AAAA", false},
		{"n,,n=alice,r=abc", "c=biws,r={r},p=AAAA", false},
		{"y,,n=alice,r=abc", "c=eSws,r={r},p=AAAA", false},
		{"p=tls-exporter,,m=ext,n=alice,r=abc", "", false},
		{"p=TLS-EXPORTER,,n=al=2Cice,r=abc", "c={c},r={r},p=AAAA", false},
	} {
		f.Add([]byte(s.first), []byte(s.final), s.tls12)
	}
	secret := rand.Text()
	db := &fuzzPassdb{stored: "{PLAIN}" + secret}
	hashes := []struct {
		name    string
		newHash func() hash.Hash
	}{{"SHA-1", sha1.New}, {"SHA-256", sha256.New}}
	f.Fuzz(func(t *testing.T, first, final []byte, tls12 bool) {
		fuzzTLS(t)
		info := fuzzInfo(db)
		info.TLS = fuzzConns.tls13
		if tls12 {
			info.TLS = fuzzConns.tls12
		}
		for _, h := range hashes {
			s := NewSCRAM(h.name, true, info)
			ch, done, err := s.Next(first)
			if err != nil || done {
				if s.Outcome().Auth.Status == auth.StatusOK {
					t.Fatalf("success after client-first %q", first)
				}
				continue
			}
			// Taken on -PLUS: "p=NAME," then the authzid field and ",".
			nonce, _, _ := serverFirstFields(t, string(ch))
			i := bytes.IndexByte(first, ',')
			j := bytes.IndexByte(first[i+1:], ',')
			gs2 := string(first[:i+1+j+1])
			cbName := string(first[2:i])
			data, ok := channelBinding(info.TLS, info.ServerCert, cbName)
			if !ok {
				t.Fatalf("%q taken without a %s binding", first, cbName)
			}
			cbind := gs2 + string(data)
			msg := strings.ReplaceAll(string(final), "{r}", nonce)
			msg = strings.ReplaceAll(msg, "{c}", base64.StdEncoding.EncodeToString([]byte(cbind)))
			s.Next([]byte(msg))
			s.Next([]byte{})
			if s.Outcome().Auth.Status == auth.StatusOK {
				t.Fatalf("success without the password: %q, %q", first, msg)
			}

			for _, tc := range []struct {
				cbind string
				want  auth.Status
			}{{cbind, auth.StatusOK}, {gs2 + otherBinding(cbName), auth.StatusPasswordMismatch}} {
				s = NewSCRAM(h.name, true, info)
				ch, _, err = s.Next(first)
				if err != nil {
					t.Fatalf("%q taken once, then %v", first, err)
				}
				nonce, _, _ = serverFirstFields(t, string(ch))
				right, sig := scramRefFinal(t, h.newHash, secret, string(first[len(gs2):]), string(ch), tc.cbind, nonce)
				ch, done, err = s.Next([]byte(right))
				want := tc.want
				if db.last != "alice" {
					want = auth.StatusUserUnknown
				}
				if want != auth.StatusOK {
					if err != nil || !done || s.Outcome().Auth.Status != want {
						t.Fatalf("%q with binding %q: %v %v %+v, want %v", first, tc.cbind, done, err, s.Outcome(), want)
					}
					continue
				}
				if err != nil || done || string(ch) != sig {
					t.Fatalf("right proof after %q: %q %v %v", first, ch, done, err)
				}
				if _, done, err = s.Next([]byte{}); !done || err != nil || s.Outcome().Auth.Status != auth.StatusOK {
					t.Fatalf("right proof after %q: %v %v %+v", first, done, err, s.Outcome())
				}
			}
		}
	})
}

// otherBinding is another connection's binding of the type cbName; where
// the other connection (TLS 1.3) has none of that type (tls-unique), a
// made-up one of tls-unique's length.
func otherBinding(cbName string) string {
	if data, ok := channelBinding(fuzzConns.other13, nil, cbName); ok {
		return string(data)
	}
	return "\x00" + strings.Repeat("x", 11)
}

// everyVerifier knows alice (plaintext password the fuzzer cannot
// guess) and the anonymous user; "down" fails temporarily.
type everyVerifier struct{ secret string }

func (v everyVerifier) Credentials(_ context.Context, req *auth.Request) (auth.Result, string, error) {
	switch req.User {
	case "down":
		return auth.Result{}, "", auth.Temporary("db", errors.New("down"))
	case "alice":
		return auth.Result{Status: auth.StatusOK, User: "alice"}, "{PLAIN}" + v.secret, nil
	case "anonymous":
		return auth.Result{Status: auth.StatusOK}, "", nil
	}
	return auth.Result{Status: auth.StatusUserUnknown}, "", nil
}

// FuzzEveryMechanism drives a conversation of one of the binary's
// mechanisms (chosen by mech) on a TLS 1.3 connection whose verified
// client certificate names alice: first is the initial response (none
// when noInitial), then the lines of rest, then two empty responses,
// until the server is done. It checks what each mechanism may
// conclude: plaintext ones only collect bounded credentials; the others
// never succeed without the secret, except EXTERNAL for the
// certificate's user, ANONYMOUS for the anonymous user and OAuth for
// the owner of the one valid token; errors are ErrMalformed or the
// verifier's own classified failures; challenges stay small.
func FuzzEveryMechanism(f *testing.F) {
	for _, s := range []struct {
		mech        string
		first, rest string
		noInitial   bool
	}{
		{"PLAIN", "\x00alice\x00secret", "", false},
		{"PLAIN", "", "admin\x00alice\x00secret", true},
		{"LOGIN", "alice", "secret", false},
		{"LOGIN", "", "alice\nsecret", true},
		{"CRAM-MD5", "", "alice 0123456789abcdef0123456789abcdef", true},
		{"DIGEST-MD5", "", rfcResponse + "\n", true},
		{"SCRAM-SHA-1", "n,,n=alice,r=fyko+d2lbbFgONRv9qkxdawL", "c=biws,r=fyko+d2lbbFgONRv9qkxdawL,p=AAAA", false},
		{"SCRAM-SHA-256", "n,a=alice,n=down,r=x", "", false},
		{"SCRAM-SHA-256-PLUS", "p=tls-exporter,,n=alice,r=abc", "c=cD10bHMtZXhwb3J0ZXIsLA==,r=abc,p=AAAA", false},
		{"SCRAM-SHA-1-PLUS", "y,,n=alice,r=abc", "", false},
		{"OAUTHBEARER", "n,a=alice,\x01host=gw\x01port=143\x01auth=Bearer good-token\x01\x01", "", false},
		{"OAUTHBEARER", "n,a=bob,\x01auth=Bearer good-token\x01\x01", "\x01", false},
		{"XOAUTH2", "user=alice\x01auth=Bearer good-token\x01\x01", "", false},
		{"XOAUTH2", "user=down\x01auth=Bearer good-token\x01\x01", "", false},
		{"EXTERNAL", "", "", false},
		{"EXTERNAL", "alice", "", false},
		{"EXTERNAL", "", "bob", true},
		{"ANONYMOUS", "trace@example.org", "", false},
		{"ANONYMOUS", "", strings.Repeat("x", 1100), true},
	} {
		idx := -1
		for i, m := range everyMechanism {
			if m.Name == s.mech {
				idx = i
			}
		}
		if idx < 0 {
			f.Fatalf("no mechanism %s", s.mech)
		}
		f.Add(uint8(idx), []byte(s.first), []byte(s.rest), s.noInitial)
	}
	v := everyVerifier{secret: rand.Text()}
	f.Fuzz(func(t *testing.T, mech uint8, first, rest []byte, noInitial bool) {
		fuzzTLS(t)
		m := everyMechanism[int(mech)%len(everyMechanism)]
		info := Info{Ctx: context.Background(), Service: "imap", Hostname: "gw.test", Realm: "gw.test",
			TLS: fuzzConns.withCertOfAlice, Verifier: v, AnonymousUser: "anonymous",
			Tokens:  tokens{"good-token": "alice"},
			Request: func(user, authzid string) *auth.Request { return &auth.Request{User: user, AuthzID: authzid} }}
		s := Begin(m, info)
		responses := [][]byte{first}
		if noInitial {
			responses[0] = nil
		}
		if len(rest) > 0 {
			responses = append(responses, bytes.Split(rest, []byte("\n"))...)
		}
		responses = append(responses, []byte{}, []byte{})
		for _, r := range responses {
			ch, done, err := s.Next(r)
			if err != nil {
				var ae *auth.Error
				if !errors.Is(err, ErrMalformed) && !errors.As(err, &ae) {
					t.Fatalf("%s: unclassified error %v after %q", m.Name, err, r)
				}
				break
			}
			if len(ch) > 1024 {
				t.Fatalf("%s: challenge of %d bytes", m.Name, len(ch))
			}
			if done {
				break // as the front ends do
			}
		}
		out := s.Outcome()
		if m.Plaintext {
			if out.Checked || out.Auth.Status != 0 || len(out.User) > maxField || len(out.Password) > maxField || len(out.AuthzID) > maxField {
				t.Fatalf("%s: outcome %+v", m.Name, out)
			}
			return
		}
		if out.Auth.Status != auth.StatusOK {
			return
		}
		switch m.Name {
		case "EXTERNAL":
			if out.User != "alice" || (out.AuthzID != "" && out.AuthzID != "alice") {
				t.Fatalf("EXTERNAL with alice's certificate let in %+v", out)
			}
		case "ANONYMOUS":
			if out.User != "anonymous" {
				t.Fatalf("ANONYMOUS let in %+v", out)
			}
		case "OAUTHBEARER", "XOAUTH2":
			if !out.Checked || out.User != "alice" {
				t.Fatalf("%s with alice's token let in %+v", m.Name, out)
			}
		default:
			t.Fatalf("%s succeeded without the password: %+v after %q", m.Name, out, responses)
		}
	})
}
