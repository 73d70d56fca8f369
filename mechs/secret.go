// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"sync"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/password"
)

// fakeSecret keys the made-up salts of unknown users. It lives as long as
// the process, so that a user's made-up salt is as stable as a real one
// while it runs, and cannot be predicted from outside.
var fakeSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
})

// fakeSalt is the salt scheme ("SCRAM-SHA-256") presents for user when the
// user's stored password cannot provide one: 16 bytes, like Dovecot's.
func fakeSalt(scheme, user string) []byte {
	m := hmac.New(sha256.New, fakeSecret())
	m.Write([]byte(scheme))
	m.Write([]byte{0})
	m.Write([]byte(user))
	return m.Sum(nil)[:16]
}

// storedPlaintext returns the password of a stored value in a plaintext
// scheme (PLAIN, CLEAR, CLEARTEXT, with an optional .HEX or .BASE64
// suffix). ok is false for any other scheme.
func storedPlaintext(stored string) (plain string, ok bool) {
	scheme, enc, data, err := password.Split(stored, "")
	if err != nil {
		return "", false
	}
	switch scheme {
	case "PLAIN", "CLEAR", "CLEARTEXT":
	default:
		return "", false
	}
	var raw []byte
	switch enc {
	case "":
		return data, true
	case "HEX":
		raw, err = hex.DecodeString(data)
	case "BASE64":
		raw, err = base64.StdEncoding.DecodeString(data)
	default:
		return "", false
	}
	if err != nil {
		return "", false
	}
	return string(raw), true
}

// lookupRequest builds the passdb request for user through info.Request,
// naming the mechanism.
func lookupRequest(info Info, mech, user, authzid string) *auth.Request {
	var r auth.Request
	if info.Request != nil {
		if req := info.Request(user, authzid); req != nil {
			r = *req
		}
	}
	if r.User == "" {
		r.User, r.AuthzID = user, authzid
	}
	if r.Service == "" {
		r.Service = info.Service
	}
	if r.Mech == "" {
		r.Mech = mech
	}
	return &r
}

func infoCtx(info Info) context.Context {
	if info.Ctx == nil {
		return context.Background()
	}
	return info.Ctx
}
