// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"hash"
	"strconv"
	"strings"
	"testing"

	xscram "github.com/xdg-go/scram"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/password"
)

// scramRun is how a conversation between the server and xdg-go/scram's
// client ended.
type scramRun struct {
	out         Outcome
	valid       bool   // the client verified the server's signature
	serverFirst string // the server's first challenge
	afterFinal  bool   // the server ended right after client-final
	err         error  // the server's error
}

// runSCRAM drives s with conv, the client sending an initial response.
func runSCRAM(t *testing.T, s Server, conv *xscram.ClientConversation) scramRun {
	t.Helper()
	var r scramRun
	msg, err := conv.Step("")
	if err != nil {
		t.Fatalf("client-first: %v", err)
	}
	for step := 0; step < 3; step++ {
		ch, done, err := s.Next([]byte(msg))
		if err != nil {
			r.err = err
			return r
		}
		if done {
			r.out, r.valid, r.afterFinal = s.Outcome(), conv.Valid(), step == 1
			return r
		}
		if step == 0 {
			r.serverFirst = string(ch)
		}
		if msg, err = conv.Step(string(ch)); err != nil {
			t.Fatalf("client on %q: %v", ch, err)
		}
	}
	t.Fatal("the conversation did not end")
	return r
}

func newSCRAMClient(t *testing.T, hashName, user, pass, authzid string) *xscram.Client {
	t.Helper()
	gen := xscram.SHA256
	if hashName == "SHA-1" {
		gen = xscram.SHA1
	}
	c, err := gen.NewClient(user, pass, authzid)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var errLDAPDown = auth.Temporary("passdb ldap", errors.New("connection refused"))

func scramUsers(t *testing.T, scheme, otherScheme string) *stubPassdb {
	t.Helper()
	gen := func(scheme, plain string, rounds ...int) string {
		var p password.Params
		if len(rounds) > 0 {
			p.Rounds = rounds[0]
		}
		s, err := password.Generate(scheme, plain, p)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	return &stubPassdb{users: map[string]stubUser{
		"plain":      {stored: "{PLAIN}secret", fields: auth.Fields{"host": "10.0.0.7"}},
		"hexplain":   {stored: "{PLAIN.HEX}" + hex.EncodeToString([]byte("secret"))},
		"scram":      {stored: gen(scheme, "secret")},
		"scram5000":  {stored: gen(scheme, "secret", 5000)},
		"otherscram": {stored: gen(otherScheme, "secret")},
		"ssha":       {stored: gen("SSHA", "secret")},
		"nopass":     {stored: ""},
		"disabled":   {status: auth.StatusUserDisabled},
		"down":       {err: errLDAPDown},
	}}
}

func TestSCRAM(t *testing.T) {
	for _, h := range []struct{ name, scheme, other string }{
		{"SHA-1", "SCRAM-SHA-1", "SCRAM-SHA-256"},
		{"SHA-256", "SCRAM-SHA-256", "SCRAM-SHA-1"},
	} {
		t.Run(h.name, func(t *testing.T) {
			db := scramUsers(t, h.scheme, h.other)
			for _, tc := range []struct {
				user, pass string
				want       auth.Status
			}{
				{"plain", "secret", auth.StatusOK},
				{"plain", "wrong", auth.StatusPasswordMismatch},
				{"hexplain", "secret", auth.StatusOK},
				{"scram", "secret", auth.StatusOK},
				{"scram", "Secret", auth.StatusPasswordMismatch},
				{"scram5000", "secret", auth.StatusOK},
				{"otherscram", "secret", auth.StatusPasswordMismatch}, // the other hash's keys
				{"ssha", "secret", auth.StatusPasswordMismatch},       // unusable scheme
				{"nopass", "secret", auth.StatusUserUnknown},
				{"ghost", "secret", auth.StatusUserUnknown},
				{"disabled", "secret", auth.StatusUserDisabled},
			} {
				s := NewSCRAM(h.name, false, stubInfo(db))
				r := runSCRAM(t, s, newSCRAMClient(t, h.name, tc.user, tc.pass, "").NewConversation())
				if r.err != nil {
					t.Fatalf("%s/%s: %v", tc.user, tc.pass, r.err)
				}
				if !r.out.Checked || r.out.Auth.Status != tc.want || r.out.User != tc.user {
					t.Errorf("%s/%s: outcome %+v, want %v", tc.user, tc.pass, r.out, tc.want)
				}
				if tc.want == auth.StatusOK {
					if !r.valid {
						t.Errorf("%s: the client rejected the server's signature", tc.user)
					}
					if tc.user == "plain" && r.out.Auth.Fields["host"] != "10.0.0.7" {
						t.Errorf("the lookup's fields were lost: %+v", r.out.Auth)
					}
					continue
				}
				// A failure is told only after the client's proof.
				if !r.afterFinal || !strings.HasPrefix(r.serverFirst, "r=") {
					t.Errorf("%s/%s: ended early (server-first %q)", tc.user, tc.pass, r.serverFirst)
				}
			}
			if got := db.lastRequest(); got.Mech != "SCRAM-"+h.name || got.Session != "sess1" {
				t.Errorf("lookup request %+v", got)
			}

			// A temporary failure of the passdb comes back as it is.
			r := runSCRAM(t, NewSCRAM(h.name, false, stubInfo(db)), newSCRAMClient(t, h.name, "down", "x", "").NewConversation())
			if r.err != errLDAPDown {
				t.Fatalf("passdb down: %v", r.err)
			}
		})
	}
}

func TestSCRAMNoInitialResponse(t *testing.T) {
	db := scramUsers(t, "SCRAM-SHA-256", "SCRAM-SHA-1")
	s := NewSCRAM("SHA-256", false, stubInfo(db))
	ch, done, err := s.Next(nil)
	if err != nil || done || len(ch) != 0 {
		t.Fatalf("no initial response: %q %v %v", ch, done, err)
	}
	r := runSCRAM(t, s, newSCRAMClient(t, "SHA-256", "scram", "secret", "").NewConversation())
	if r.err != nil || r.out.Auth.Status != auth.StatusOK || !r.valid {
		t.Fatalf("%+v", r)
	}
	// Asking twice is not a conversation.
	s = NewSCRAM("SHA-256", false, stubInfo(db))
	s.Next(nil)
	if _, _, err := s.Next(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("second empty response: %v", err)
	}
}

// serverFirstFields splits server-first into its attributes.
func serverFirstFields(t *testing.T, sf string) (nonce string, salt []byte, iter int) {
	t.Helper()
	f := strings.Split(sf, ",")
	if len(f) != 3 || !strings.HasPrefix(f[0], "r=") || !strings.HasPrefix(f[1], "s=") || !strings.HasPrefix(f[2], "i=") {
		t.Fatalf("server-first %q", sf)
	}
	salt, err := base64.StdEncoding.DecodeString(f[1][2:])
	if err != nil {
		t.Fatalf("salt in %q: %v", sf, err)
	}
	iter, err = strconv.Atoi(f[2][2:])
	if err != nil {
		t.Fatalf("iterations in %q: %v", sf, err)
	}
	return f[0][2:], salt, iter
}

// TestSCRAMUnknownUserLooksReal: before the proof, an unknown user, one
// without a usable password and one with a plaintext password look alike:
// a stable 16-byte salt, 4096 iterations, a nonce of the same shape.
func TestSCRAMUnknownUserLooksReal(t *testing.T) {
	db := scramUsers(t, "SCRAM-SHA-256", "SCRAM-SHA-1")
	first := func(user string) (string, []byte, int) {
		s := NewSCRAM("SHA-256", false, stubInfo(db))
		ch, done, err := s.Next([]byte("n,,n=" + user + ",r=clientnonce"))
		if err != nil || done {
			t.Fatalf("%s: %v %v", user, done, err)
		}
		return serverFirstFields(t, string(ch))
	}
	salts := map[string]string{}
	for _, user := range []string{"ghost", "plain", "ssha", "nopass", "disabled", "otherscram"} {
		n1, salt1, iter1 := first(user)
		n2, salt2, iter2 := first(user)
		if string(salt1) != string(salt2) || iter1 != 4096 || iter2 != 4096 || len(salt1) != 16 {
			t.Errorf("%s: salt %x then %x, iterations %d, %d", user, salt1, salt2, iter1, iter2)
		}
		if !strings.HasPrefix(n1, "clientnonce") || n1 == n2 || len(n1) != len(n2) {
			t.Errorf("%s: nonces %q, %q", user, n1, n2)
		}
		if other, dup := salts[string(salt1)]; dup {
			t.Errorf("%s and %s share a salt", user, other)
		}
		salts[string(salt1)] = user
	}
}

func TestSCRAMAuthzIDAndEscapedNames(t *testing.T) {
	db := &stubPassdb{users: map[string]stubUser{"a,b=c": {stored: "{PLAIN}pw"}}}
	s := NewSCRAM("SHA-256", false, stubInfo(db))
	conv := newSCRAMClient(t, "SHA-256", "a,b=c", "pw", "master=1,x").NewConversation()
	r := runSCRAM(t, s, conv)
	if r.err != nil || r.out.Auth.Status != auth.StatusOK || r.out.User != "a,b=c" || r.out.AuthzID != "master=1,x" {
		t.Fatalf("%+v", r)
	}
	if req := db.lastRequest(); req.User != "a,b=c" || req.AuthzID != "master=1,x" {
		t.Fatalf("lookup %+v", req)
	}
	// The hex digits of an escape are not case-sensitive (RFC 5234 2.3).
	s = NewSCRAM("SHA-256", false, stubInfo(db))
	if _, _, err := s.Next([]byte("n,,n=a=2cb=3dc,r=x")); err != nil || db.lastRequest().User != "a,b=c" {
		t.Fatalf("lower-case escapes: %v %+v", err, db.lastRequest())
	}
}

// scramRefProof is the test's own client arithmetic (RFC 5802 section 3),
// independent of the server's: ClientProof and ServerSignature.
func scramRefProof(newHash func() hash.Hash, pass string, salt []byte, iter int, authMessage string) (proof, serverSig []byte) {
	mac := func(key []byte, msg string) []byte {
		m := hmac.New(newHash, key)
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	salted, err := pbkdf2.Key(newHash, pass, salt, iter, newHash().Size())
	if err != nil {
		panic(err)
	}
	clientKey := mac(salted, "Client Key")
	h := newHash()
	h.Write(clientKey)
	sig := mac(h.Sum(nil), authMessage)
	proof = make([]byte, len(sig))
	for i := range sig {
		proof[i] = clientKey[i] ^ sig[i]
	}
	return proof, mac(mac(salted, "Server Key"), authMessage)
}

// scramRefFinal builds client-final for first (whose bare part follows
// gs2) and the server's serverFirst, with c= and r= as given.
func scramRefFinal(t *testing.T, newHash func() hash.Hash, pass, bare, serverFirst, cbind, nonce string) (final, serverFinal string) {
	t.Helper()
	_, salt, iter := serverFirstFields(t, serverFirst)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(cbind)) + ",r=" + nonce
	proof, sig := scramRefProof(newHash, pass, salt, iter, bare+","+serverFirst+","+withoutProof)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), "v=" + base64.StdEncoding.EncodeToString(sig)
}

// TestSCRAMHandBuilt checks the nonce and the GS2 header repeated in c=,
// with proofs computed by the test itself.
func TestSCRAMHandBuilt(t *testing.T) {
	db := scramUsers(t, "SCRAM-SHA-1", "SCRAM-SHA-256")
	const bare = "n=plain,r=fyko+d2lbbFgONRv9qkxdawL"
	for _, tc := range []struct {
		name, gs2, cbind, nonceSuffix string
		want                          auth.Status
	}{
		{"right", "n,,", "n,,", "", auth.StatusOK},
		{"y without TLS", "y,,", "y,,", "", auth.StatusOK},
		{"authzid", "n,a=plain,", "n,a=plain,", "", auth.StatusOK},
		{"other nonce", "n,,", "n,,", "x", auth.StatusPasswordMismatch},
		{"other gs2 header", "n,,", "y,,", "", auth.StatusPasswordMismatch},
		{"dropped authzid", "n,a=plain,", "n,,", "", auth.StatusPasswordMismatch},
		{"cb data without p", "n,,", "n,,\x01\x02", "", auth.StatusPasswordMismatch},
	} {
		s := NewSCRAM("SHA-1", false, stubInfo(db))
		ch, _, err := s.Next([]byte(tc.gs2 + bare))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		nonce, _, _ := serverFirstFields(t, string(ch))
		final, wantSig := scramRefFinal(t, sha1.New, "secret", bare, string(ch), tc.cbind, nonce+tc.nonceSuffix)
		ch, done, err := s.Next([]byte(final))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if tc.want != auth.StatusOK {
			if !done || s.Outcome().Auth.Status != tc.want || !s.Outcome().Checked {
				t.Errorf("%s: %v %+v", tc.name, done, s.Outcome())
			}
			continue
		}
		if done || string(ch) != wantSig {
			t.Fatalf("%s: server-final %q, want %q", tc.name, ch, wantSig)
		}
		if s.Outcome().Auth.Status == auth.StatusOK {
			t.Fatalf("%s: success before the client acknowledged server-final", tc.name)
		}
		if _, done, err := s.Next([]byte{}); !done || err != nil || s.Outcome().Auth.Status != auth.StatusOK {
			t.Fatalf("%s: %v %v %+v", tc.name, done, err, s.Outcome())
		}
		if _, _, err := s.Next([]byte{}); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: a step after the end: %v", tc.name, err)
		}
	}

	// Server-final must be acknowledged with an empty response.
	s := NewSCRAM("SHA-1", false, stubInfo(db))
	ch, _, _ := s.Next([]byte("n,," + bare))
	nonce, _, _ := serverFirstFields(t, string(ch))
	final, _ := scramRefFinal(t, sha1.New, "secret", bare, string(ch), "n,,", nonce)
	s.Next([]byte(final))
	if _, _, err := s.Next([]byte("x")); !errors.Is(err, ErrMalformed) || s.Outcome().Auth.Status == auth.StatusOK {
		t.Fatalf("non-empty acknowledgement: %v %+v", err, s.Outcome())
	}
}

func TestSCRAMMalformed(t *testing.T) {
	db := scramUsers(t, "SCRAM-SHA-256", "SCRAM-SHA-1")
	long := strings.Repeat("x", maxField+1)
	for _, first := range []string{
		"", "n", "n,", "n,,", "n,,n=plain", "x,,n=plain,r=abc", "N,,n=plain,r=abc",
		"p=tls-unique,,n=plain,r=abc", // p= on the plain mechanism
		"p=,,n=plain,r=abc", "n,b=x,n=plain,r=abc", "n,a=,n=plain,r=abc", "n,a=x=2,n=plain,r=abc",
		"n,,m=ext,n=plain,r=abc", // reserved mandatory extension
		"n,,n=,r=abc", "n,,n=pl=ain,r=abc", "n,,n=pl=2Xain,r=abc", "n,,n=plain=2,r=abc", "n,,n=plain=",
		"n,,r=abc,n=plain", "n,,n=plain,r=", "n,,n=plain,r=a b", "n,,n=plain,x=abc",
		"n,,n=plain,r=abc,1=x", "n,,n=plain,r=abc,x", "n,,n=plain,r=abc,x=", "n,,n=plain,r=abc,",
		"n,,n=pla\x00in,r=abc", "n,,n=pla\xffin,r=abc", "n,,n=plain,r=ab\x7fc",
		"n,,n=" + long + ",r=abc", "n,a=" + long + ",n=plain,r=abc",
		"n,,n=plain,r=" + strings.Repeat("a", maxSCRAMNonce+1),
		"n,,n=plain,r=abc,x=" + strings.Repeat("y", maxSCRAMMessage),
	} {
		s := NewSCRAM("SHA-256", false, stubInfo(db))
		if _, _, err := s.Next([]byte(first)); !errors.Is(err, ErrMalformed) {
			t.Errorf("client-first %q: %v", first, err)
		}
		if _, _, err := s.Next([]byte("n,,n=plain,r=abc")); !errors.Is(err, ErrMalformed) {
			t.Errorf("client-first %q: the conversation went on: %v", first, err)
		}
	}
	for _, first := range []string{"n,,n=plain,r=abc", "y,,n=plain,r=abc"} {
		s := NewSCRAM("SHA-256", true, stubInfo(db)) // -PLUS wants p=
		if _, _, err := s.Next([]byte(first)); !errors.Is(err, ErrMalformed) {
			t.Errorf("-PLUS client-first %q: %v", first, err)
		}
	}

	proof := base64.StdEncoding.EncodeToString(make([]byte, sha256.Size))
	for _, final := range []string{
		"", "c=biws", "c=biws,r={r}", "c=biws,r={r},p=", "c=biws,r={r},p=!!!!",
		"c=biws,r={r},p=" + base64.StdEncoding.EncodeToString(make([]byte, sha1.Size)),
		"c=biws,r={r},p=" + proof + ",x=y", "c=biws,r={r},p=" + proof + "=",
		"r={r},c=biws,p=" + proof, "c=,r={r},p=" + proof, "c=biws=,r={r},p=" + proof, "c=bi*s,r={r},p=" + proof,
		"c=biws,p=" + proof, "c=biws,r=,p=" + proof, "c=biws,r={r} ,p=" + proof, "c=biws,r={r},1=x,p=" + proof,
		"c=biws,r={r},x,p=" + proof, "c=biws,r={r},p=" + proof + "\x00", "x=biws,r={r},p=" + proof,
		"c=biws,r={r},x=" + strings.Repeat("y", maxSCRAMMessage) + ",p=" + proof,
	} {
		s := NewSCRAM("SHA-256", false, stubInfo(db))
		ch, _, err := s.Next([]byte("n,,n=plain,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		nonce, _, _ := serverFirstFields(t, string(ch))
		msg := strings.ReplaceAll(final, "{r}", nonce)
		if _, done, err := s.Next([]byte(msg)); !errors.Is(err, ErrMalformed) {
			t.Errorf("client-final %q: %v %v %+v", final, done, err, s.Outcome())
		}
	}
}

func TestSCRAMMisuse(t *testing.T) {
	db := scramUsers(t, "SCRAM-SHA-256", "SCRAM-SHA-1")
	_, _, err := NewSCRAM("MD5", false, stubInfo(db)).Next([]byte("n,,n=plain,r=abc"))
	if auth.KindOf(err) != auth.KindInternal || err == nil {
		t.Fatalf("unknown hash: %v", err)
	}
	_, _, err = NewSCRAM("SHA-256", false, Info{}).Next([]byte("n,,n=plain,r=abc"))
	if auth.KindOf(err) != auth.KindInternal || err == nil {
		t.Fatalf("no verifier: %v", err)
	}
	for _, m := range []Mechanism{SCRAMSHA1, SCRAMSHA256, SCRAMSHA1Plus, SCRAMSHA256Plus} {
		if m.NeedsTLS != strings.HasSuffix(m.Name, "-PLUS") || m.Check == nil || m.Start != nil {
			t.Errorf("%+v", m)
		}
	}
}
