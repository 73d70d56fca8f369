// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"hash"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

// fuzzPassdb knows "alice" with a password the fuzzer cannot guess, and
// remembers the last user looked up (it keeps no history: fuzzing runs
// millions of lookups).
type fuzzPassdb struct {
	stored string
	last   string
}

func (p *fuzzPassdb) Credentials(_ context.Context, req *auth.Request) (auth.Result, string, error) {
	p.last = req.User
	if req.User != "alice" {
		return auth.Result{Status: auth.StatusUserUnknown}, "", nil
	}
	return auth.Result{Status: auth.StatusOK, User: req.User}, p.stored, nil
}

func fuzzInfo(p *fuzzPassdb) Info {
	return Info{Ctx: context.Background(), Service: "imap", Verifier: p,
		Request: func(user, authzid string) *auth.Request { return &auth.Request{User: user, AuthzID: authzid} }}
}

// FuzzSCRAM feeds client-first and client-final messages; in final,
// "{r}" stands for the exchange's nonce and "{c}" for the right c= value,
// so that the fuzzer gets past them to the proof. Nothing it sends may
// succeed; and whenever the server takes its client-first, the right
// proof (computed by the test) must succeed for alice and fail for anyone
// else.
func FuzzSCRAM(f *testing.F) {
	secret := rand.Text()
	db := &fuzzPassdb{stored: "{PLAIN}" + secret}
	hashes := []struct {
		name    string
		newHash func() hash.Hash
	}{{"SHA-1", sha1.New}, {"SHA-256", sha256.New}}
	f.Fuzz(func(t *testing.T, first, final []byte) {
		for _, h := range hashes {
			s := NewSCRAM(h.name, false, fuzzInfo(db))
			ch, done, err := s.Next(first)
			if err != nil || done {
				if s.Outcome().Auth.Status == auth.StatusOK {
					t.Fatalf("success after client-first %q", first)
				}
				continue
			}
			nonce, _, _ := serverFirstFields(t, string(ch))
			// The test's own reading of the GS2 header: up to the
			// second comma.
			i := strings.IndexByte(string(first), ',')
			j := strings.IndexByte(string(first[i+1:]), ',')
			gs2 := string(first[:i+1+j+1])
			msg := strings.ReplaceAll(string(final), "{r}", nonce)
			msg = strings.ReplaceAll(msg, "{c}", base64.StdEncoding.EncodeToString([]byte(gs2)))
			s.Next([]byte(msg))
			s.Next([]byte{})
			if s.Outcome().Auth.Status == auth.StatusOK {
				t.Fatalf("success without the password: %q, %q", first, msg)
			}

			s = NewSCRAM(h.name, false, fuzzInfo(db))
			ch, _, err = s.Next(first)
			if err != nil {
				t.Fatalf("%q taken once, then %v", first, err)
			}
			nonce, _, _ = serverFirstFields(t, string(ch))
			right, sig := scramRefFinal(t, h.newHash, secret, string(first[len(gs2):]), string(ch), gs2, nonce)
			ch, done, err = s.Next([]byte(right))
			if db.last != "alice" {
				if err != nil || !done || s.Outcome().Auth.Status != auth.StatusUserUnknown {
					t.Fatalf("unknown user %q: %v %v %+v", db.last, done, err, s.Outcome())
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
	})
}
