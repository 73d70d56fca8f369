// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/password"
)

// The example of RFC 2831 section 4 (its IMAP one).
const (
	rfcNonce    = "OA6MG9tEQGm2hh"
	rfcRealm    = "elwood.innosoft.com"
	rfcResponse = `charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",` +
		`nc=00000001,cnonce="OA6MHXh6VqTrRk",digest-uri="imap/elwood.innosoft.com",` +
		`response=d388dad90d4bbd760a152321f2143af7,qop=auth`
	rfcRspauth = "rspauth=ea40f60335c427b5527b84dbabcdfffd"
)

// newDigestWithNonce starts a DIGEST-MD5 server whose nonce is nonce.
func newDigestWithNonce(info Info, nonce string) Server {
	d := NewDigestMD5(info).(*digestMD5)
	d.nonce = func() string { return nonce }
	return d
}

func mustGenerate(t *testing.T, scheme, plain string, p password.Params) string {
	t.Helper()
	s, err := password.Generate(scheme, plain, p)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDigestMD5RFCExample(t *testing.T) {
	for _, stored := range []string{
		"{PLAIN}secret",
		"{CLEAR.BASE64}c2VjcmV0",
		mustGenerate(t, "DIGEST-MD5", "secret", password.Params{User: "chris@" + rfcRealm}),
		mustGenerate(t, "DIGEST-MD5.B64", "secret", password.Params{User: "chris", Realm: rfcRealm}),
	} {
		// With a realm and a user name without "@", Dovecot looks up
		// user@realm.
		db := &stubPassdb{users: map[string]stubUser{"chris@" + rfcRealm: {stored: stored, fields: auth.Fields{"host": "h1"}}}}
		info := stubInfo(db)
		info.Realm = rfcRealm
		s := newDigestWithNonce(info, rfcNonce)
		ch, done, err := s.Next(nil)
		want := `realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",charset=utf-8,algorithm=md5-sess`
		if err != nil || done || string(ch) != want {
			t.Fatalf("challenge %q %v %v", ch, done, err)
		}
		ch, done, err = s.Next([]byte(rfcResponse))
		if err != nil || done || string(ch) != rfcRspauth {
			t.Fatalf("%s: %q %v %v %+v", stored, ch, done, err, s.Outcome())
		}
		if s.Outcome().Auth.Status == auth.StatusOK {
			t.Fatal("success before the client's last response")
		}
		_, done, err = s.Next([]byte{})
		o := s.Outcome()
		if err != nil || !done || !o.Checked || o.Auth.Status != auth.StatusOK || o.User != "chris@"+rfcRealm || o.Auth.Fields["host"] != "h1" {
			t.Fatalf("%s: %v %v %+v", stored, done, err, o)
		}
		if req := db.lastRequest(); req.User != "chris@"+rfcRealm || req.Mech != "DIGEST-MD5" || req.Session != "sess1" {
			t.Fatalf("lookup %+v", req)
		}
		// Replaying the exchange's response: the conversation is over.
		if _, _, err := s.Next([]byte(rfcResponse)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("replay: %v", err)
		}
	}
}

// digestClient is the test's own client computation (RFC 2831 section
// 2.1.2.1), independent of the server's.
type digestClient struct {
	user, realm, pass, authzid, uri, cnonce string
	extra                                   string // appended directives
}

var nonceRE = regexp.MustCompile(`nonce="([^"]*)"`)

func (c digestClient) respond(t *testing.T, challenge []byte) (response, rspauth string) {
	t.Helper()
	m := nonceRE.FindSubmatch(challenge)
	if m == nil {
		t.Fatalf("no nonce in %q", challenge)
	}
	nonce := string(m[1])
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	ha1 := md5.Sum([]byte(c.user + ":" + c.realm + ":" + c.pass))
	a1 := string(ha1[:]) + ":" + nonce + ":" + c.cnonce
	if c.authzid != "" {
		a1 += ":" + c.authzid
	}
	resp := func(a2 string) string { return h(h(a1) + ":" + nonce + ":00000001:" + c.cnonce + ":auth:" + h(a2)) }
	var b strings.Builder
	quote := func(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }
	b.WriteString(`username=` + quote(c.user))
	if c.realm != "" {
		b.WriteString(`,realm=` + quote(c.realm))
	}
	b.WriteString(`,nonce="` + nonce + `",cnonce="` + c.cnonce + `",nc=00000001,qop=auth,digest-uri="` + c.uri + `"`)
	if c.authzid != "" {
		b.WriteString(`,authzid="` + c.authzid + `"`)
	}
	b.WriteString(",response=" + resp("AUTHENTICATE:"+c.uri) + c.extra)
	return b.String(), "rspauth=" + resp(":"+c.uri)
}

// runDigest runs one conversation; the outcome is the final one.
func runDigest(t *testing.T, s Server, c digestClient) (Outcome, error) {
	t.Helper()
	ch, _, err := s.Next(nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, rspauth := c.respond(t, ch)
	ch, done, err := s.Next([]byte(resp))
	if err != nil || done {
		return s.Outcome(), err
	}
	if string(ch) != rspauth {
		t.Fatalf("rspauth %q, want %q", ch, rspauth)
	}
	_, done, err = s.Next([]byte{})
	if !done || err != nil {
		t.Fatalf("after rspauth: %v %v", done, err)
	}
	return s.Outcome(), nil
}

func TestDigestMD5(t *testing.T) {
	db := &stubPassdb{users: map[string]stubUser{
		"alice@example.com": {stored: "{PLAIN}pw"},
		"alice":             {stored: "{PLAIN}pw"},
		"bob@example.com":   {stored: mustGenerate(t, "DIGEST-MD5", "pw", password.Params{User: "bob@example.com"})},
		"carol@example.com": {stored: mustGenerate(t, "SSHA", "pw", password.Params{})},
		"dave@example.com":  {stored: ""},
		"erin@example.com":  {status: auth.StatusUserDisabled},
		"down@example.com":  {err: errLDAPDown},
		"frank@example.com": {stored: "{DIGEST-MD5}zz"},
		"admin@example.com": {stored: "{PLAIN}adminpw"},
		"hex@gw.test":       {stored: "{PLAIN.HEX}7077"},
		"quoted\"x@gw.test": {stored: "{PLAIN}pw"},
	}}
	uri := "imap/gw.test"
	for _, tc := range []struct {
		name   string
		c      digestClient
		want   auth.Status
		lookup string
	}{
		{"realm as domain", digestClient{user: "alice", realm: "example.com", pass: "pw"}, auth.StatusOK, "alice@example.com"},
		{"full name with realm", digestClient{user: "alice@example.com", realm: "gw.test", pass: "pw"}, auth.StatusOK, "alice@example.com"},
		{"full name without realm", digestClient{user: "alice@example.com", pass: "pw"}, auth.StatusOK, "alice@example.com"},
		{"no realm", digestClient{user: "alice", pass: "pw"}, auth.StatusOK, "alice"},
		{"wrong password", digestClient{user: "alice", realm: "example.com", pass: "pW"}, auth.StatusPasswordMismatch, "alice@example.com"},
		{"unknown user", digestClient{user: "ghost", realm: "example.com", pass: "pw"}, auth.StatusUserUnknown, "ghost@example.com"},
		{"stored DIGEST-MD5, its realm", digestClient{user: "bob", realm: "example.com", pass: "pw"}, auth.StatusOK, "bob@example.com"},
		// The value was made for user "bob", realm "example.com": a
		// client hashing another user/realm split cannot match it.
		{"stored DIGEST-MD5, other realm", digestClient{user: "bob@example.com", realm: "gw.test", pass: "pw"}, auth.StatusPasswordMismatch, "bob@example.com"},
		{"stored DIGEST-MD5, no realm", digestClient{user: "bob@example.com", pass: "pw"}, auth.StatusPasswordMismatch, "bob@example.com"},
		{"unusable scheme", digestClient{user: "carol", realm: "example.com", pass: "pw"}, auth.StatusPasswordMismatch, "carol@example.com"},
		{"broken stored value", digestClient{user: "frank", realm: "example.com", pass: "pw"}, auth.StatusPasswordMismatch, "frank@example.com"},
		{"no password", digestClient{user: "dave", realm: "example.com", pass: "pw"}, auth.StatusUserUnknown, "dave@example.com"},
		{"disabled", digestClient{user: "erin", realm: "example.com", pass: "pw"}, auth.StatusUserDisabled, "erin@example.com"},
		{"authzid", digestClient{user: "admin", realm: "example.com", pass: "adminpw", authzid: "alice@example.com"}, auth.StatusOK, "admin@example.com"},
		{"hex plaintext", digestClient{user: "hex", realm: "gw.test", pass: "pw"}, auth.StatusOK, "hex@gw.test"},
		{"quoted-pair", digestClient{user: `quoted"x`, realm: "gw.test", pass: "pw"}, auth.StatusOK, "quoted\"x@gw.test"},
		{"unknown directives", digestClient{user: "alice", realm: "example.com", pass: "pw", extra: `,cipher="rc4",x-foo=bar,maxbuf=65536`}, auth.StatusOK, "alice@example.com"},
	} {
		tc.c.cnonce, tc.c.uri = "cn0nce", uri
		o, err := runDigest(t, NewDigestMD5(stubInfo(db)), tc.c)
		if err != nil || !o.Checked || o.Auth.Status != tc.want || o.User != tc.lookup || o.AuthzID != tc.c.authzid {
			t.Errorf("%s: %v %+v", tc.name, err, o)
		}
		if got := db.lastRequest(); got.User != tc.lookup || got.AuthzID != tc.c.authzid {
			t.Errorf("%s: lookup %+v", tc.name, got)
		}
	}
	// A temporary failure of the passdb comes back as it is.
	_, err := runDigest(t, NewDigestMD5(stubInfo(db)), digestClient{user: "down", realm: "example.com", pass: "pw", cnonce: "c", uri: uri})
	if err != errLDAPDown {
		t.Fatalf("passdb down: %v", err)
	}
	if _, _, err := NewDigestMD5(Info{}).Next(nil); auth.KindOf(err) != auth.KindInternal || err == nil {
		t.Fatalf("no verifier: %v", err)
	}
}

func TestDigestMD5Challenge(t *testing.T) {
	db := &stubPassdb{}
	info := stubInfo(db)
	info.Realm = `we"ird\host`
	s := newDigestWithNonce(info, "n1")
	// An initial response (subsequent authentication) gets a fresh
	// challenge, as RFC 2831 section 2.2 and Dovecot have it.
	ch, done, err := s.Next([]byte(rfcResponse))
	if err != nil || done || string(ch) != `realm="we\"ird\\host",nonce="n1",qop="auth",charset=utf-8,algorithm=md5-sess` {
		t.Fatalf("%q %v %v", ch, done, err)
	}
	info.Realm = ""
	if ch, _, _ := NewDigestMD5(info).Next([]byte{}); !strings.HasPrefix(string(ch), `realm="",nonce="`) {
		t.Fatalf("no realm: %q", ch)
	}
	n1, _, _ := NewDigestMD5(info).Next(nil)
	n2, _, _ := NewDigestMD5(info).Next(nil)
	if string(n1) == string(n2) {
		t.Fatal("the same nonce twice")
	}
}

// TestDigestMD5Lenient: what real clients send and Dovecot accepts.
func TestDigestMD5Lenient(t *testing.T) {
	db := &stubPassdb{users: map[string]stubUser{"chris@" + rfcRealm: {stored: "{PLAIN}secret"}}}
	for _, resp := range []string{
		rfcResponse,
		// Upper-case keys, white space, empty list elements, unquoted
		// digest-uri, upper-case hex.
		` Charset = utf-8 ,, USERNAME="chris" ,realm="elwood.innosoft.com",nonce = "OA6MG9tEQGm2hh",` +
			`nc=00000001,cnonce="OA6MHXh6VqTrRk",	digest-uri=imap/elwood.innosoft.com,` +
			`response=D388DAD90D4BBD760A152321F2143AF7,qop=auth,`,
		// nc and qop default to 00000001 and auth; the charset is optional.
		`username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",cnonce="OA6MHXh6VqTrRk",` +
			`digest-uri="imap/elwood.innosoft.com",response=d388dad90d4bbd760a152321f2143af7`,
		// Escaped characters that need no escape.
		`username="\c\h\r\i\s",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",cnonce="OA6MHXh6VqTrRk",` +
			`digest-uri="imap/elwood.innosoft.com",response=d388dad90d4bbd760a152321f2143af7`,
	} {
		info := stubInfo(db)
		s := newDigestWithNonce(info, rfcNonce)
		s.Next(nil)
		if ch, done, err := s.Next([]byte(resp)); err != nil || done || string(ch) != rfcRspauth {
			t.Errorf("%q: %q %v %v %+v", resp, ch, done, err, s.Outcome())
		}
	}
	// Dovecot checks neither the serv-type nor the host of digest-uri: a
	// response for another service still verifies (its hash covers it).
	info := stubInfo(db)
	s := newDigestWithNonce(info, "n")
	ch, _, _ := s.Next(nil)
	resp, rspauth := digestClient{user: "chris", realm: rfcRealm, pass: "secret", cnonce: "c", uri: "smtp/elsewhere"}.respond(t, ch)
	if ch, _, err := s.Next([]byte(resp)); err != nil || string(ch) != rspauth {
		t.Errorf("other digest-uri: %q %v", ch, err)
	}
	// Without digest-uri, A2 is "AUTHENTICATE:".
	s = newDigestWithNonce(info, "n")
	ch, _, _ = s.Next(nil)
	resp, rspauth = digestClient{user: "chris", realm: rfcRealm, pass: "secret", cnonce: "c", uri: ""}.respond(t, ch)
	resp = strings.Replace(resp, `,digest-uri=""`, "", 1)
	if ch, _, err := s.Next([]byte(resp)); err != nil || string(ch) != rspauth {
		t.Errorf("no digest-uri: %q %v", ch, err)
	}
}

func TestDigestMD5Malformed(t *testing.T) {
	db := &stubPassdb{users: map[string]stubUser{"chris@" + rfcRealm: {stored: "{PLAIN}secret"}}}
	replace := func(old, new string) string { return strings.Replace(rfcResponse, old, new, 1) }
	for _, resp := range []string{
		"", "garbage", "=x", "username", `username="chris`, `username="chris"x`, `username=chris realm=x`,
		`username="ch` + "\n" + `ris"`, "username=\x00", "user\xffname=x",
		replace(`username="chris",`, ""),
		replace(`username="chris"`, `username=""`),
		replace(`username="chris"`, `username="chris",username="chris"`),
		replace(`realm="elwood.innosoft.com"`, `realm="elwood.innosoft.com",realm="elwood.innosoft.com"`),
		replace(`nonce="OA6MG9tEQGm2hh",`, ""),
		replace(`nonce="OA6MG9tEQGm2hh"`, `nonce="OA6MG9tEQGm2hH"`), // not this exchange's
		replace(`nonce="OA6MG9tEQGm2hh"`, `nonce="OA6MG9tEQGm2hh",nonce="OA6MG9tEQGm2hh"`),
		replace(`cnonce="OA6MHXh6VqTrRk",`, ""),
		replace(`cnonce="OA6MHXh6VqTrRk"`, `cnonce=""`),
		replace("nc=00000001", "nc=00000002"), // subsequent authentication
		replace("nc=00000001", "nc=x"),
		replace("nc=00000001", "nc=000000001"),
		replace("qop=auth", "qop=auth-int"), // no security layers
		replace("qop=auth", "qop=auth-conf"),
		replace("qop=auth", "qop=bogus"),
		replace("charset=utf-8", "charset=iso-8859-1"),
		replace(`digest-uri="imap/elwood.innosoft.com"`, `digest-uri="imap"`),
		replace(`digest-uri="imap/elwood.innosoft.com"`, `digest-uri=""`),
		replace("response=d388dad90d4bbd760a152321f2143af7", "response=d388dad90d4bbd760a152321f2143af"),
		replace("response=d388dad90d4bbd760a152321f2143af7", "response=x388dad90d4bbd760a152321f2143af7"),
		replace(",response=d388dad90d4bbd760a152321f2143af7", ""),
		rfcResponse + `,authzid=""`,
		rfcResponse + `,maxbuf=0`,
		rfcResponse + `,maxbuf=x`,
		rfcResponse + `,x-unknown=1,x-unknown=2`,
		rfcResponse + `,x=` + strings.Repeat("y", maxDigestResponse),
		replace(`username="chris"`, `username="`+strings.Repeat("c", maxField+1)+`"`),
	} {
		s := newDigestWithNonce(stubInfo(db), rfcNonce)
		s.Next(nil)
		if _, _, err := s.Next([]byte(resp)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v %+v", resp, err, s.Outcome())
		}
		// The conversation is over.
		if _, _, err := s.Next([]byte(rfcResponse)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: went on: %v", resp, err)
		}
	}
	// The response of one exchange is worthless in the next (new nonce).
	s := NewDigestMD5(stubInfo(db))
	s.Next(nil)
	if _, _, err := s.Next([]byte(rfcResponse)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("old nonce: %v", err)
	}
	// rspauth must be acknowledged with an empty response.
	s = newDigestWithNonce(stubInfo(db), rfcNonce)
	s.Next(nil)
	s.Next([]byte(rfcResponse))
	if _, _, err := s.Next([]byte("x")); !errors.Is(err, ErrMalformed) || s.Outcome().Auth.Status == auth.StatusOK {
		t.Fatalf("non-empty acknowledgement: %v %+v", err, s.Outcome())
	}
}
