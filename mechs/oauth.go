// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"bytes"
	"errors"
	"strings"

	"github.com/maildirector/maildirector/auth"
)

// ErrInvalidToken is a TokenValidator's answer for a token that is not
// valid: the login fails (it is not a temporary failure).
var ErrInvalidToken = errors.New("invalid token")

// OAuthBearer is RFC 7628 OAUTHBEARER; XOAUTH2 is Google's older form of
// the same. With a TokenValidator the gateway checks the token itself;
// without one, the token is handed to the backend with the same mechanism.
var (
	OAuthBearer = Mechanism{Name: "OAUTHBEARER", Check: func(info Info) Server { return &oauth{info: info, mech: "OAUTHBEARER"} }}
	XOAuth2     = Mechanism{Name: "XOAUTH2", Check: func(info Info) Server { return &oauth{info: info, mech: "XOAUTH2"} }}
)

// maxToken bounds a bearer token (JWTs run to a few kilobytes).
const maxToken = 16 * 1024

type oauth struct {
	info   Info
	mech   string
	failed bool // the error challenge was sent; the client's reply ends it
	out    Outcome
}

func (m *oauth) Next(response []byte) ([]byte, bool, error) {
	if m.failed {
		// RFC 7628 3.2.3: after the error challenge the client sends a
		// dummy response and the server fails the exchange.
		return nil, true, nil
	}
	if response == nil {
		return []byte{}, false, nil
	}
	if len(response) > maxToken {
		return nil, false, ErrMalformed
	}
	var user, token string
	var err error
	if m.mech == "XOAUTH2" {
		user, token, err = parseXOAuth2(response)
	} else {
		user, token, err = parseOAuthBearer(response)
	}
	if err != nil {
		return nil, false, err
	}
	m.out = Outcome{User: user, AuthzID: user}
	if m.info.Tokens == nil {
		// Not ours to check: the backend will, with the same mechanism.
		// The lookup still gives the routing fields.
		res, _, err := m.info.Verifier.Credentials(m.info.Ctx, m.info.Request(user, ""))
		if err != nil {
			return nil, false, err
		}
		m.out.Auth = res
		m.out.Token, m.out.TokenMech = token, m.mech
		return nil, true, nil
	}
	owner, err := m.info.Tokens.Validate(m.info.Ctx, token)
	if errors.Is(err, ErrInvalidToken) {
		return m.invalidToken(""), false, nil
	}
	if err != nil {
		return nil, false, err
	}
	res, _, err := m.info.Verifier.Credentials(m.info.Ctx, m.info.Request(user, ""))
	if err != nil {
		return nil, false, err
	}
	// The token must be the user's: its owner is compared with the name
	// the passdb chain made of the login name (auth.default_realm,
	// auth.username_format), ignoring ASCII case only, as Dovecot's oauth2
	// passdb compares "%Lu" of the token's user with the request's user.
	canonical := res.User
	if canonical == "" {
		canonical = user
	}
	if auth.LowerASCII(owner) != auth.LowerASCII(canonical) {
		return m.invalidToken(canonical), false, nil
	}
	// Checked here: the backend login is a master login, so that the
	// backends need not know the identity provider.
	m.out.Checked, m.out.Auth = true, res
	return nil, true, nil
}

// invalidToken fails the exchange with RFC 7628 3.2.2's error challenge.
func (m *oauth) invalidToken(user string) []byte {
	m.out.Checked, m.out.Auth = true, auth.Result{Status: auth.StatusPasswordMismatch, User: user}
	m.failed = true
	return []byte(`{"status":"invalid_token"}`)
}

func (m *oauth) Outcome() Outcome { return m.out }

// parseOAuthBearer reads RFC 7628 3.1: gs2-header "n,a=user," then
// key=value pairs separated by 0x01, "auth=Bearer TOKEN" among them.
func parseOAuthBearer(b []byte) (user, token string, err error) {
	gs2, rest, ok := bytes.Cut(b, []byte{1})
	if !ok || !bytes.HasSuffix(b, []byte{1, 1}) {
		return "", "", ErrMalformed
	}
	parts := strings.Split(string(gs2), ",")
	if len(parts) != 3 || (parts[0] != "n" && parts[0] != "y") || parts[2] != "" {
		return "", "", ErrMalformed
	}
	if a, ok := strings.CutPrefix(parts[1], "a="); ok {
		user = strings.NewReplacer("=2C", ",", "=3D", "=").Replace(a)
	}
	token, err = bearer(rest)
	if err != nil || user == "" {
		// Without a=, the token alone names the user; we insist on it so
		// that routing never waits for the token's owner.
		return "", "", ErrMalformed
	}
	return user, token, nil
}

// parseXOAuth2 reads "user=USER\x01auth=Bearer TOKEN\x01\x01".
func parseXOAuth2(b []byte) (user, token string, err error) {
	if !bytes.HasSuffix(b, []byte{1, 1}) {
		return "", "", ErrMalformed
	}
	for _, kv := range bytes.Split(b[:len(b)-2], []byte{1}) {
		if u, ok := bytes.CutPrefix(kv, []byte("user=")); ok {
			user = string(u)
		}
	}
	token, err = bearer(b)
	if err != nil || user == "" {
		return "", "", ErrMalformed
	}
	return user, token, nil
}

// bearer finds "auth=Bearer TOKEN" among 0x01-separated pairs.
func bearer(b []byte) (string, error) {
	for _, kv := range bytes.Split(b, []byte{1}) {
		if v, ok := bytes.CutPrefix(kv, []byte("auth=")); ok {
			scheme, tok, ok := strings.Cut(string(v), " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || tok == "" || strings.ContainsAny(tok, " \x00") {
				return "", ErrMalformed
			}
			return tok, nil
		}
	}
	return "", ErrMalformed
}
