// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"bytes"
	"errors"
	"strings"

	"github.com/emersion/go-sasl"
)

// ErrMalformed is returned for a client response that breaks the
// mechanism's syntax; protocols answer it with BAD (or their equivalent).
var ErrMalformed = errors.New("malformed SASL response")

// maxField bounds each credential so that a mechanism never holds more than
// a line's worth of attacker-controlled data.
const maxField = 1024

// Credentials is what a plaintext mechanism learned from the client.
type Credentials struct {
	AuthzID  string // requested authorization identity; "" when none
	User     string // authentication identity
	Password string
}

// Exchange is one SASL conversation. Next takes the client's response (nil
// when the client sent no initial response) and returns the next challenge,
// or done once the credentials are complete.
type Exchange interface {
	Next(response []byte) (challenge []byte, done bool, err error)
	Credentials() Credentials
}

// Mechanism describes one SASL mechanism and starts exchanges.
type Mechanism struct {
	Name string
	// Plaintext mechanisms carry the password in the clear: they are
	// offered on cleartext connections only where plaintext is allowed.
	Plaintext bool
	// NeedsTLS mechanisms (the -PLUS ones, EXTERNAL) are offered only on
	// TLS connections.
	NeedsTLS bool
	// Start begins a plaintext mechanism's exchange (PLAIN, LOGIN), whose
	// credentials the caller checks; Check begins one of a mechanism that
	// checks the client itself. Exactly one is set.
	Start func() Exchange
	Check func(Info) Server
}

// Plain is RFC 4616 PLAIN, parsed by go-sasl's server.
var Plain = Mechanism{Name: "PLAIN", Plaintext: true, Start: newPlain}

// Login is the LOGIN mechanism (draft-murchison-sasl-login): a username
// challenge, then a password challenge. go-sasl has only its client side.
var Login = Mechanism{Name: "LOGIN", Plaintext: true, Start: func() Exchange { return &login{} }}

// Lookup returns the mechanism called name (case-insensitive) among
// enabled.
func Lookup(enabled []Mechanism, name string) (Mechanism, bool) {
	for _, m := range enabled {
		if strings.EqualFold(m.Name, name) {
			return m, true
		}
	}
	return Mechanism{}, false
}

type plain struct {
	srv   sasl.Server
	creds Credentials
}

func newPlain() Exchange {
	p := &plain{}
	p.srv = sasl.NewPlainServer(func(identity, username, password string) error {
		if len(identity) > maxField || len(username) > maxField || len(password) > maxField {
			return ErrMalformed
		}
		p.creds = Credentials{AuthzID: identity, User: username, Password: password}
		return nil
	})
	return p
}

func (p *plain) Next(response []byte) ([]byte, bool, error) {
	// go-sasl treats a nil response as "no initial response"; an empty
	// one, which a client sends as "=" (RFC 4959) or an empty line, is a
	// malformed PLAIN message.
	if response != nil && bytes.Count(response, []byte{0}) != 2 {
		return nil, false, ErrMalformed
	}
	ch, done, err := p.srv.Next(response)
	if err != nil {
		return nil, false, ErrMalformed
	}
	return ch, done, nil
}

func (p *plain) Credentials() Credentials { return p.creds }

type login struct {
	step  int
	creds Credentials
}

func (l *login) Next(response []byte) ([]byte, bool, error) {
	if len(response) > maxField || bytes.IndexByte(response, 0) >= 0 {
		return nil, false, ErrMalformed
	}
	switch l.step {
	case 0:
		l.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.creds.User = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.creds.Password = string(response)
		l.step = 3
		return nil, true, nil
	}
	return nil, false, ErrMalformed
}

func (l *login) Credentials() Credentials { return l.creds }
