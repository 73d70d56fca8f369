// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/password"
)

// DigestMD5 is RFC 2831 DIGEST-MD5 (historic, RFC 6331) for authentication
// only, no security layer, as Dovecot's mech-digest-md5.c serves it. The
// passdb must hold the password in plaintext or as {DIGEST-MD5}.
var DigestMD5 = Mechanism{Name: "DIGEST-MD5", Check: func(info Info) Server { return NewDigestMD5(info) }}

type digestState uint8

const (
	digestChallenge digestState = iota // nothing sent yet
	digestResponse                     // digest-challenge sent
	digestVerified                     // rspauth sent, waiting for the empty response
	digestDone
)

type digestMD5 struct {
	info  Info
	nonce func() string // the server nonce; tests replace it

	state     digestState
	snonce    string
	out       Outcome
	succeeded Outcome
}

// NewDigestMD5 starts a DIGEST-MD5 conversation. Its challenge offers the
// realm info.Realm ("" offers the empty realm, as Dovecot does without
// auth_realms).
//
// As in Dovecot, a client that names a realm and a user name without "@"
// is looked up as "user@realm", so that a {DIGEST-MD5} value made with
// `doveadm pw -u user@realm` is usable.
func NewDigestMD5(info Info) Server {
	return &digestMD5{info: info, nonce: digestNonce}
}

// digestNonce is 128 random bits in base64, like Dovecot's.
func digestNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

func (d *digestMD5) Outcome() Outcome { return d.out }

func (d *digestMD5) Next(response []byte) ([]byte, bool, error) {
	state := d.state
	d.state = digestDone // until a step succeeds
	switch state {
	case digestChallenge:
		// The server speaks first (RFC 2831 section 2.1.1). An initial
		// response would be a try at subsequent authentication
		// (section 2.2), which is not supported: answering with a fresh
		// challenge is the fallback the RFC gives, as in Dovecot.
		if d.info.Verifier == nil {
			return nil, false, auth.Internal("SASL DIGEST-MD5", errors.New("no verifier"))
		}
		d.snonce = d.nonce()
		d.state = digestResponse
		return []byte(`realm=` + quoteDigest(d.info.Realm) + `,nonce=` + quoteDigest(d.snonce) +
			`,qop="auth",charset=utf-8,algorithm=md5-sess`), false, nil
	case digestResponse:
		return d.response(response)
	case digestVerified:
		if len(response) != 0 {
			return nil, false, ErrMalformed
		}
		d.out = d.succeeded
		return nil, true, nil
	}
	return nil, false, ErrMalformed
}

func (d *digestMD5) response(msg []byte) ([]byte, bool, error) {
	r, err := parseDigestResponse(msg, d.snonce)
	if err != nil {
		return nil, false, err
	}
	user := r.username
	if r.realm != "" && !strings.Contains(user, "@") {
		user += "@" + r.realm // Dovecot's domain_is_realm
	}
	res, stored, err := d.info.Verifier.Credentials(infoCtx(d.info), lookupRequest(d.info, "DIGEST-MD5", user, r.authzid))
	if err != nil {
		return nil, false, err
	}
	d.out = Outcome{Checked: true, User: user, AuthzID: r.authzid, Auth: res}
	switch {
	case res.Status == 0:
		d.out.Auth.Status = auth.StatusUserUnknown
		return nil, true, nil
	case res.Status != auth.StatusOK:
		return nil, true, nil
	case stored == "":
		d.out.Auth.Status = auth.StatusUserUnknown
		return nil, true, nil
	}
	ha1, ok := digestHA1(stored, r.username, r.realm)
	if !ok {
		// Another scheme, or a broken value: for this mechanism as
		// good as a wrong password.
		d.out.Auth.Status = auth.StatusPasswordMismatch
		return nil, true, nil
	}
	want, rspauth := digestResponseValues(ha1, d.snonce, r)
	if subtle.ConstantTimeCompare(want, r.response) != 1 {
		d.out.Auth.Status = auth.StatusPasswordMismatch
		return nil, true, nil
	}
	d.succeeded, d.out = d.out, Outcome{}
	d.state = digestVerified
	return []byte("rspauth=" + rspauth), false, nil
}

// digestHA1 is H(username ":" realm ":" password), RFC 2831 section
// 2.1.2.1, from a plaintext password, or as stored in a {DIGEST-MD5} value
// (made for one user and realm: with another realm the response just does
// not match, as in Dovecot).
func digestHA1(stored, username, realm string) ([]byte, bool) {
	if plain, ok := storedPlaintext(stored); ok {
		sum := md5.Sum([]byte(username + ":" + realm + ":" + plain))
		return sum[:], true
	}
	scheme, enc, data, err := password.Split(stored, "")
	if err != nil || scheme != "DIGEST-MD5" {
		return nil, false
	}
	var raw []byte
	// Without a suffix, the value may be hex (the default) or base64: the
	// length says which, as in the password package.
	if enc == "HEX" || enc == "" && len(data) == 2*md5.Size {
		raw, err = hex.DecodeString(data)
	} else {
		raw, err = base64.StdEncoding.DecodeString(data)
	}
	if err != nil || len(raw) != md5.Size {
		return nil, false
	}
	return raw, true
}

// digestResponseValues computes RFC 2831 section 2.1.2.1's response value
// (binary) and section 2.1.3's rspauth (hex) for qop "auth".
func digestResponseValues(ha1 []byte, snonce string, r digestResp) (response []byte, rspauth string) {
	a1 := string(ha1) + ":" + snonce + ":" + r.cnonce
	if r.authzid != "" {
		a1 += ":" + r.authzid
	}
	ha1Hex := md5Hex(a1)
	kd := func(a2 string) string {
		return md5Hex(ha1Hex + ":" + snonce + ":" + r.nc + ":" + r.cnonce + ":" + r.qop + ":" + md5Hex(a2))
	}
	response, _ = hex.DecodeString(kd("AUTHENTICATE:" + r.digestURI))
	return response, kd(":" + r.digestURI)
}

func md5Hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// quoteDigest is RFC 2831's quoted-string.
func quoteDigest(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
