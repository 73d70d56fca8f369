// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

// credsTable is a Verifier over a map: user → stored password; a user
// named "down" fails temporarily.
type credsTable map[string]string

func (c credsTable) Credentials(_ context.Context, req *auth.Request) (auth.Result, string, error) {
	if req.User == "down" {
		return auth.Result{}, "", auth.Temporary("db", errors.New("down"))
	}
	stored, ok := c[req.User]
	if !ok {
		return auth.Result{Status: auth.StatusUserUnknown}, "", nil
	}
	return auth.Result{Status: auth.StatusOK, User: req.User, Fields: auth.Fields{"host": "h"}}, stored, nil
}

func infoFor(v Verifier) Info {
	return Info{Ctx: context.Background(), Service: "imap", Hostname: "gw.test", Verifier: v,
		Request: func(user, authzid string) *auth.Request { return &auth.Request{User: user, AuthzID: authzid} }}
}

func cramAnswer(challenge []byte, user, pass string) []byte {
	h := hmac.New(md5.New, []byte(pass))
	h.Write(challenge)
	return []byte(user + " " + hex.EncodeToString(h.Sum(nil)))
}

func TestCRAMMD5(t *testing.T) {
	v := credsTable{"alice": "{PLAIN}secret", "bob": "{SSHA}notusable", "down": ""}
	run := func(user, pass string) (Outcome, error) {
		s := CRAMMD5.Check(infoFor(v))
		ch, done, err := s.Next(nil)
		if err != nil || done || !strings.HasPrefix(string(ch), "<") || !strings.HasSuffix(string(ch), "@gw.test>") {
			t.Fatalf("challenge %q %v %v", ch, done, err)
		}
		_, done, err = s.Next(cramAnswer(ch, user, pass))
		if err == nil && !done {
			t.Fatal("not done after the answer")
		}
		return s.Outcome(), err
	}
	if o, err := run("alice", "secret"); err != nil || !o.Checked || o.Auth.Status != auth.StatusOK || o.Auth.Fields["host"] != "h" {
		t.Fatalf("right password: %+v %v", o, err)
	}
	if o, _ := run("alice", "wrong"); o.Auth.Status != auth.StatusPasswordMismatch {
		t.Fatalf("wrong password: %+v", o)
	}
	if o, _ := run("bob", "x"); o.Auth.Status == auth.StatusOK {
		t.Fatal("an unusable stored scheme let bob in")
	}
	if o, _ := run("nobody", "x"); o.Auth.Status != auth.StatusUserUnknown {
		t.Fatalf("unknown user: %+v", o)
	}
	if _, err := run("down", "x"); auth.KindOf(err) != auth.KindTemporary || err == nil {
		t.Fatalf("database down: %v", err)
	}
	s := CRAMMD5.Check(infoFor(v))
	if _, _, err := s.Next([]byte("alice 00")); !errors.Is(err, ErrMalformed) {
		t.Fatal("an initial response was accepted")
	}
	s = CRAMMD5.Check(infoFor(v))
	s.Next(nil)
	for _, bad := range []string{"alice", "alice zz" + strings.Repeat("0", 30), " " + strings.Repeat("0", 32), "alice " + strings.Repeat("0", 31)} {
		if _, _, err := s.Next([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

type tokens map[string]string // token → owner

func (t tokens) Validate(_ context.Context, token string) (string, error) {
	if token == "boom" {
		return "", auth.Temporary("idp", errors.New("unreachable"))
	}
	if u, ok := t[token]; ok {
		return u, nil
	}
	return "", ErrInvalidToken
}

func TestOAuth(t *testing.T) {
	v := credsTable{"alice@example.com": ""}
	bearerMsg := func(user, token string) []byte {
		return []byte("n,a=" + user + ",\x01host=gw\x01port=143\x01auth=Bearer " + token + "\x01\x01")
	}
	xoauth := func(user, token string) []byte {
		return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
	}
	for _, tc := range []struct {
		m    Mechanism
		msg  func(string, string) []byte
		name string
	}{{OAuthBearer, bearerMsg, "OAUTHBEARER"}, {XOAuth2, xoauth, "XOAUTH2"}} {
		t.Run(tc.name, func(t *testing.T) {
			info := infoFor(v)
			info.Tokens = tokens{"good": "alice@example.com", "bobs": "bob@example.com"}
			s := tc.m.Check(info)
			if _, done, err := s.Next(tc.msg("alice@example.com", "good")); !done || err != nil || s.Outcome().Auth.Status != auth.StatusOK {
				t.Fatalf("valid token: %v %v %+v", done, err, s.Outcome())
			}
			for _, tok := range []string{"bad", "bobs"} { // invalid, or someone else's
				s = tc.m.Check(info)
				ch, done, err := s.Next(tc.msg("alice@example.com", tok))
				if done || err != nil || !strings.Contains(string(ch), "invalid_token") {
					t.Fatalf("token %s: %q %v %v", tok, ch, done, err)
				}
				if _, done, _ := s.Next([]byte{1}); !done || s.Outcome().Auth.Status == auth.StatusOK {
					t.Fatalf("token %s accepted", tok)
				}
			}
			s = tc.m.Check(info)
			if _, _, err := s.Next(tc.msg("alice@example.com", "boom")); err == nil || auth.KindOf(err) != auth.KindTemporary {
				t.Fatalf("validator down: %v", err)
			}
			// Without a validator the token goes to the backend.
			info.Tokens = nil
			s = tc.m.Check(info)
			if _, done, err := s.Next(tc.msg("alice@example.com", "anything")); !done || err != nil || s.Outcome().Checked ||
				s.Outcome().Token != "anything" || s.Outcome().TokenMech != tc.name {
				t.Fatalf("pass-through: %+v %v", s.Outcome(), err)
			}
			for _, bad := range [][]byte{[]byte("garbage"), tc.msg("", "tok"), tc.msg("alice@example.com", ""), []byte("n,,\x01auth=Basic x\x01\x01")} {
				if _, _, err := tc.m.Check(info).Next(bad); !errors.Is(err, ErrMalformed) {
					t.Errorf("%q: %v", bad, err)
				}
			}
		})
	}
}

func TestAnonymousAndExternalWithoutCertificate(t *testing.T) {
	v := credsTable{"anonymous": "", "alice": ""}
	s := Anonymous.Check(infoFor(v))
	if _, done, err := s.Next([]byte("trace@example.com")); !done || err != nil || s.Outcome().Auth.Status != auth.StatusOK || s.Outcome().User != "anonymous" {
		t.Fatalf("anonymous: %+v %v", s.Outcome(), err)
	}
	s = External.Check(infoFor(v)) // cleartext: no certificate
	if _, done, _ := s.Next([]byte("")); !done || s.Outcome().Auth.Status == auth.StatusOK {
		t.Fatal("EXTERNAL without a certificate succeeded")
	}
}

func FuzzOAuth(f *testing.F) {
	f.Add([]byte("n,a=u@x,\x01auth=Bearer t\x01\x01"))
	f.Add([]byte("user=u\x01auth=Bearer t\x01\x01"))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, m := range []Mechanism{OAuthBearer, XOAuth2} {
			info := infoFor(credsTable{})
			info.Tokens = tokens{}
			s := m.Check(info)
			s.Next(in)
			if s.Outcome().Auth.Status == auth.StatusOK {
				t.Fatalf("%s accepted %q with no valid token", m.Name, in)
			}
		}
	})
}

func FuzzCRAMMD5(f *testing.F) {
	f.Add([]byte("alice 0123456789abcdef0123456789abcdef"))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := CRAMMD5.Check(infoFor(credsTable{"alice": "{PLAIN}secret"}))
		s.Next(nil)
		s.Next(in)
		if s.Outcome().Auth.Status == auth.StatusOK {
			t.Fatalf("accepted %q", in)
		}
	})
}

func FuzzAnonymousExternal(f *testing.F) {
	f.Add([]byte("trace@example.org"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := External.Check(infoFor(credsTable{"alice": ""}))
		s.Next(in)
		if s.Outcome().Auth.Status == auth.StatusOK {
			t.Fatalf("EXTERNAL without a certificate accepted %q", in)
		}
		a := Anonymous.Check(infoFor(credsTable{}))
		if _, _, err := a.Next(in); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("ANONYMOUS: %v", err)
		}
	})
}

// realmTable is a Verifier that, like the passdb chain with
// auth.default_realm, completes a name without "@" before looking it up,
// and answers with the completed name.
type realmTable struct {
	credsTable
	realm string
}

func (r realmTable) Credentials(ctx context.Context, req *auth.Request) (auth.Result, string, error) {
	q := *req
	if !strings.Contains(q.User, "@") {
		q.User += "@" + r.realm
	}
	res, stored, err := r.credsTable.Credentials(ctx, &q)
	if err == nil {
		res.User = q.User
	}
	return res, stored, err
}

// TestOAuthOwnerIsTheCanonicalUser: a token is the user's when its owner
// is the name the passdb made of the login name (the default realm added),
// ignoring ASCII case only, as Dovecot's oauth2 passdb compares them.
func TestOAuthOwnerIsTheCanonicalUser(t *testing.T) {
	v := realmTable{credsTable{"alice@example.org": "", "ärger@example.org": ""}, "example.org"}
	info := infoFor(v)
	info.Tokens = tokens{"alice": "Alice@Example.ORG", "aerger": "ÄRGER@example.org"}
	msg := func(user, token string) []byte {
		return []byte("n,a=" + user + ",\x01auth=Bearer " + token + "\x01\x01")
	}
	s := OAuthBearer.Check(info)
	if _, done, err := s.Next(msg("alice", "alice")); !done || err != nil || s.Outcome().Auth.Status != auth.StatusOK ||
		s.Outcome().Auth.User != "alice@example.org" {
		t.Fatalf("realm-less login with alice@example.org's token: %v %v %+v", done, err, s.Outcome())
	}
	// "Ä" and "ä" are different letters to Dovecot's %L.
	s = OAuthBearer.Check(info)
	if ch, done, err := s.Next(msg("ärger", "aerger")); done || err != nil || !strings.Contains(string(ch), "invalid_token") {
		t.Fatalf("ÄRGER's token accepted for ärger: %q %v %v %+v", ch, done, err, s.Outcome())
	}
}
