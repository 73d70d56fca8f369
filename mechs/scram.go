// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"strings"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/password"
)

// The SCRAM mechanisms: RFC 5802 (SCRAM-SHA-1) and RFC 7677
// (SCRAM-SHA-256), and their -PLUS variants, which bind the exchange to
// the TLS connection (RFC 5802 section 6). The passdb must hold the
// password as {SCRAM-SHA-1} / {SCRAM-SHA-256} or in plaintext.
var (
	SCRAMSHA1       = Mechanism{Name: "SCRAM-SHA-1", Check: func(info Info) Server { return NewSCRAM("SHA-1", false, info) }}
	SCRAMSHA256     = Mechanism{Name: "SCRAM-SHA-256", Check: func(info Info) Server { return NewSCRAM("SHA-256", false, info) }}
	SCRAMSHA1Plus   = Mechanism{Name: "SCRAM-SHA-1-PLUS", NeedsTLS: true, Check: func(info Info) Server { return NewSCRAM("SHA-1", true, info) }}
	SCRAMSHA256Plus = Mechanism{Name: "SCRAM-SHA-256-PLUS", NeedsTLS: true, Check: func(info Info) Server { return NewSCRAM("SHA-256", true, info) }}
)

// scramIterations is the iteration count of keys derived from a plaintext
// password and of the made-up keys of unknown users: Dovecot's default.
const scramIterations = 4096

type scramState uint8

const (
	scramClientFirst scramState = iota // waiting for client-first-message
	scramClientFinal                   // server-first sent
	scramVerified                      // server-final sent, waiting for the empty response
	scramDone
)

type scram struct {
	info    Info
	hash    string // "SCRAM-SHA-256": the stored scheme and the salt's domain
	mech    string // the mechanism's name, with "-PLUS"
	newHash func() hash.Hash
	plus    bool
	nonce   func() string // the server nonce; tests replace it

	state     scramState
	askedOnce bool // sent the empty challenge for a missing initial response

	first     scramFirst
	cbInput   []byte // what the client's c= must decode to
	nonceAll  string // c-nonce + s-nonce
	srvFirst  string
	keys      password.SCRAMCredentials
	res       auth.Result
	failWith  auth.Status // StatusOK when keys are the user's real ones
	out       Outcome
	succeeded Outcome // the outcome once the client acknowledges server-final
}

// NewSCRAM starts a SCRAM conversation: hash is "SHA-1" or "SHA-256", plus
// selects the -PLUS variant (channel binding from info.TLS). Any other
// hash makes the first Next an internal failure.
//
// An unknown user, one without a password, or one whose stored password
// cannot give SCRAM keys gets a salt and iteration count made up from the
// user name (the same every time, like a real user's), and fails only
// after the client's proof, so that the exchange reveals nothing about
// which users exist (RFC 5802 section 9).
func NewSCRAM(hash string, plus bool, info Info) Server {
	s := &scram{info: info, plus: plus, nonce: rand.Text}
	switch strings.ToUpper(hash) {
	case "SHA-1", "SHA1":
		s.hash, s.newHash = "SCRAM-SHA-1", sha1.New
	case "SHA-256", "SHA256":
		s.hash, s.newHash = "SCRAM-SHA-256", sha256.New
	}
	s.mech = s.hash
	if plus {
		s.mech += "-PLUS"
	}
	return s
}

func (s *scram) Outcome() Outcome { return s.out }

func (s *scram) Next(response []byte) ([]byte, bool, error) {
	state := s.state
	s.state = scramDone // until a step succeeds
	switch state {
	case scramClientFirst:
		if response == nil && !s.askedOnce {
			// No initial response: an empty challenge asks for it.
			s.askedOnce, s.state = true, scramClientFirst
			return []byte{}, false, nil
		}
		return s.clientFirst(response)
	case scramClientFinal:
		return s.clientFinal(response)
	case scramVerified:
		// RFC 5802 section 5: the client answers server-final with an
		// empty response; anything else ends the conversation.
		if len(response) != 0 {
			return nil, false, ErrMalformed
		}
		s.out = s.succeeded
		return nil, true, nil
	}
	return nil, false, ErrMalformed
}

func (s *scram) clientFirst(msg []byte) ([]byte, bool, error) {
	if s.newHash == nil {
		return nil, false, auth.Internal("SASL "+s.mech, errors.New("unknown SCRAM hash"))
	}
	if s.info.Verifier == nil {
		return nil, false, auth.Internal("SASL "+s.mech, errors.New("no verifier"))
	}
	cf, err := parseSCRAMClientFirst(msg)
	if err != nil {
		return nil, false, err
	}
	s.first = cf
	// RFC 5802 section 6: the GS2 flag must fit the mechanism chosen.
	switch {
	case s.plus != (cf.cbFlag == 'p'):
		// p= on the plain mechanism, or n/y on -PLUS: the client
		// contradicts the mechanism it chose.
		return nil, false, ErrMalformed
	case cf.cbFlag == 'y' && s.info.TLS != nil:
		// The client could bind but believes we cannot: on this
		// connection we offer -PLUS, so someone removed it from the
		// mechanism list (a downgrade).
		return s.fail(auth.StatusPasswordMismatch)
	case s.plus:
		data, ok := channelBinding(s.info.TLS, s.info.ServerCert, cf.cbName)
		if !ok {
			return s.fail(auth.StatusPasswordMismatch)
		}
		s.cbInput = append([]byte(cf.gs2Header), data...)
	default:
		s.cbInput = []byte(cf.gs2Header)
	}

	res, stored, err := s.info.Verifier.Credentials(infoCtx(s.info), lookupRequest(s.info, s.mech, cf.user, cf.authzid))
	if err != nil {
		return nil, false, err // auth.Error kinds, as the passdb classified them
	}
	s.res = res
	s.keys, s.failWith = s.userKeys(res, stored)

	s.nonceAll = cf.cnonce + s.nonce()
	s.srvFirst = "r=" + s.nonceAll + ",s=" + base64.StdEncoding.EncodeToString(s.keys.Salt) +
		",i=" + strconv.Itoa(s.keys.Iterations)
	s.state = scramClientFinal
	return []byte(s.srvFirst), false, nil
}

// userKeys returns the keys to check the proof with: the user's, or made-up
// ones and the status to fail with.
func (s *scram) userKeys(res auth.Result, stored string) (password.SCRAMCredentials, auth.Status) {
	user := s.first.user
	fake := func(st auth.Status) (password.SCRAMCredentials, auth.Status) {
		return fakeSCRAMKeys(s.hash, user, s.newHash().Size()), st
	}
	switch {
	case res.Status == 0 || stored == "" && res.Status == auth.StatusOK:
		return fake(auth.StatusUserUnknown)
	case res.Status != auth.StatusOK:
		return fake(res.Status)
	}
	if plain, ok := storedPlaintext(stored); ok {
		// Derived with the salt an unknown user would get, not a fresh
		// one: a salt that changed at every attempt would tell plaintext
		// users from unknown ones.
		keys, err := deriveSCRAMKeys(s.newHash, plain, fakeSalt(s.hash, user), scramIterations)
		if err == nil {
			return keys, auth.StatusOK
		}
	}
	keys, err := password.SCRAMKeys(stored, s.hash, password.Params{User: user})
	if err != nil {
		// Another scheme, or a broken value: as good as a wrong password
		// for this mechanism, and the client must not learn which.
		return fake(auth.StatusPasswordMismatch)
	}
	return keys, auth.StatusOK
}

func (s *scram) clientFinal(msg []byte) ([]byte, bool, error) {
	cf, err := parseSCRAMClientFinal(msg, s.newHash().Size())
	if err != nil {
		return nil, false, err
	}
	// RFC 5802 section 3.
	authMessage := s.first.bare + "," + s.srvFirst + "," + cf.withoutProof
	clientSig := hmacOf(s.newHash, s.keys.StoredKey, authMessage)
	clientKey := make([]byte, len(clientSig))
	subtle.XORBytes(clientKey, cf.proof, clientSig)
	h := s.newHash()
	h.Write(clientKey)
	proofOK := subtle.ConstantTimeCompare(h.Sum(nil), s.keys.StoredKey) == 1
	// The nonce and the channel binding (RFC 5802 section 6: cbind-input
	// byte for byte) must be what this exchange started with.
	nonceOK := cf.nonce == s.nonceAll
	cbOK := subtle.ConstantTimeCompare(cf.cbind, s.cbInput) == 1

	switch {
	case s.failWith != auth.StatusOK:
		return s.fail(s.failWith)
	case !proofOK || !nonceOK || !cbOK:
		return s.fail(auth.StatusPasswordMismatch)
	}
	s.succeeded = Outcome{Checked: true, User: s.first.user, AuthzID: s.first.authzid, Auth: s.res}
	s.state = scramVerified
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacOf(s.newHash, s.keys.ServerKey, authMessage))), false, nil
}

// fail ends the conversation unsuccessfully; the front end answers NO.
func (s *scram) fail(st auth.Status) ([]byte, bool, error) {
	res := s.res
	res.Status = st
	s.out = Outcome{Checked: true, User: s.first.user, AuthzID: s.first.authzid, Auth: res}
	s.state = scramDone
	return nil, true, nil
}

// deriveSCRAMKeys computes RFC 5802 section 3's keys from a password, as
// Dovecot does (no SASLprep).
func deriveSCRAMKeys(newHash func() hash.Hash, plain string, salt []byte, iter int) (password.SCRAMCredentials, error) {
	salted, err := pbkdf2.Key(newHash, plain, salt, iter, newHash().Size())
	if err != nil {
		return password.SCRAMCredentials{}, err
	}
	clientKey := hmacOf(newHash, salted, "Client Key")
	h := newHash()
	h.Write(clientKey)
	return password.SCRAMCredentials{
		Iterations: iter,
		Salt:       salt,
		StoredKey:  h.Sum(nil),
		ServerKey:  hmacOf(newHash, salted, "Server Key"),
	}, nil
}

// fakeSCRAMKeys are an unknown user's: the salt the user would always get,
// Dovecot's default iteration count, and random keys no proof matches.
func fakeSCRAMKeys(hashName, user string, size int) password.SCRAMCredentials {
	stored, server := make([]byte, size), make([]byte, size)
	rand.Read(stored)
	rand.Read(server)
	return password.SCRAMCredentials{Iterations: scramIterations, Salt: fakeSalt(hashName, user), StoredKey: stored, ServerKey: server}
}

func hmacOf(newHash func() hash.Hash, key []byte, msg string) []byte {
	m := hmac.New(newHash, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
