// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"context"
	"crypto/tls"

	"github.com/maildirector/maildirector/auth"
)

// Verifier is what mechanisms that check the client's proof themselves
// (CRAM-MD5, DIGEST-MD5, SCRAM) need from the passdb chain: the user's
// extra fields and stored password, without a password check.
// passdb.Chain satisfies it. stored is "{SCHEME}data", or "" when the
// passdb holds no password for the user (nopassword, auth_bind): such a
// user cannot use these mechanisms.
type Verifier interface {
	Credentials(ctx context.Context, req *auth.Request) (res auth.Result, stored string, err error)
}

// Info is what a mechanism may know about the connection.
type Info struct {
	Ctx      context.Context
	Service  string // "imap", "pop3", "sieve" (DIGEST-MD5's digest-uri)
	Hostname string // the server's name (CRAM-MD5 challenge)
	// Realm is the realm DIGEST-MD5 offers ("": the empty realm, as
	// Dovecot without auth_realms).
	Realm string
	// TLS is the client connection's TLS state, nil on cleartext. -PLUS
	// mechanisms take their channel binding from it (RFC 9266
	// tls-exporter; RFC 5929 tls-unique for TLS 1.2).
	TLS *tls.ConnectionState
	// ServerCert is the certificate the gateway presented on that
	// connection (DER), for RFC 5929 tls-server-end-point; nil when not
	// known.
	ServerCert []byte
	// Verifier looks users up; Request builds the lookup's request for a
	// user (with the client's address and session) — both nil for the
	// plaintext mechanisms, which leave checking to the caller.
	Verifier Verifier
	Request  func(user, authzid string) *auth.Request
	// CertUsernameField picks the user name in a client certificate for
	// EXTERNAL: "commonName" (default) or "emailAddress".
	CertUsernameField string
	// AnonymousUser is the user ANONYMOUS logs in as (Dovecot's
	// auth_anonymous_username, default "anonymous").
	AnonymousUser string
	// Tokens validates OAUTHBEARER / XOAUTH2 tokens; nil passes them to
	// the backend with the same mechanism instead.
	Tokens TokenValidator
}

// TokenValidator checks an OAuth 2.0 bearer token and returns the user
// it was issued for. A token that is not (or no longer) valid is
// ErrInvalidToken; anything else is an error classified as usual.
type TokenValidator interface {
	Validate(ctx context.Context, token string) (user string, err error)
}

// Outcome is what a finished conversation established.
type Outcome struct {
	AuthzID string // requested authorization identity, "" when none
	User    string // authentication identity
	// Password is the plaintext password (PLAIN, LOGIN), for the caller
	// to verify through the passdb chain and to forward to the backend.
	Password string
	// Checked: the mechanism itself verified the client (CRAM-MD5,
	// DIGEST-MD5, SCRAM, EXTERNAL...): Auth is the passdb's answer, with
	// its Status saying whether the proof was right (StatusOK) or not
	// (StatusPasswordMismatch, StatusUserUnknown...).
	Checked bool
	Auth    auth.Result
	// Token and TokenMech: an OAuth token the gateway did not check, to be
	// presented to the backend with the same mechanism.
	Token, TokenMech string
}

// Server is one conversation of a mechanism that checks the client
// itself. Next takes the client's response (nil: no initial response) and
// returns the next challenge, or done. Errors: ErrMalformed for a response
// that breaks the mechanism's syntax (BAD), auth.Error from the lookup
// (temporary or internal failure); a wrong proof is not an error but a
// done conversation whose Outcome says so.
type Server interface {
	Next(response []byte) (challenge []byte, done bool, err error)
	Outcome() Outcome
}
