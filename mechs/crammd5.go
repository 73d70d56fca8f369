// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/password"
)

// CRAMMD5 is RFC 2195 CRAM-MD5: the server sends a unique challenge, the
// client answers "user HMAC-MD5(password, challenge)". The passdb must
// hold the password in plaintext or as {CRAM-MD5}.
var CRAMMD5 = Mechanism{Name: "CRAM-MD5", Check: func(info Info) Server { return &cramMD5{info: info} }}

type cramMD5 struct {
	info      Info
	challenge []byte
	out       Outcome
}

func (m *cramMD5) Next(response []byte) ([]byte, bool, error) {
	if m.challenge == nil {
		if len(response) > 0 {
			return nil, false, ErrMalformed // server-first: no initial response
		}
		var r [8]byte
		rand.Read(r[:])
		host := m.info.Hostname
		if host == "" {
			host = "localhost"
		}
		m.challenge = []byte(fmt.Sprintf("<%x.%d@%s>", r, time.Now().Unix(), host))
		return m.challenge, false, nil
	}
	user, digest, ok := strings.Cut(string(response), " ")
	if !ok || user == "" || len(digest) != 32 || len(user) > maxField {
		return nil, false, ErrMalformed
	}
	want, err := hex.DecodeString(strings.ToLower(digest))
	if err != nil {
		return nil, false, ErrMalformed
	}
	m.out = Outcome{User: user, Checked: true}
	res, stored, err := m.info.Verifier.Credentials(m.info.Ctx, m.info.Request(user, ""))
	if err != nil {
		return nil, false, err
	}
	m.out.Auth = res
	if res.Status != auth.StatusOK {
		return nil, true, nil
	}
	ctx, err := password.CRAMMD5Context(stored, password.Params{User: user})
	if err != nil || subtle.ConstantTimeCompare(ctx.Sum(m.challenge), want) != 1 {
		// A stored password CRAM-MD5 cannot use is as good as a wrong one
		// for this mechanism: the client learns nothing more.
		m.out.Auth = auth.Result{Status: auth.StatusPasswordMismatch}
	}
	return nil, true, nil
}

func (m *cramMD5) Outcome() Outcome { return m.out }
