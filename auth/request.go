// SPDX-License-Identifier: Apache-2.0

package auth

import (
	"net/netip"
)

// Request describes one authentication attempt or one lookup (LMTP RCPT).
// A front end fills it in; databases only read it.
type Request struct {
	Service string // "imap", "pop3", "lmtp", "sieve"
	Mech    string // SASL mechanism; "" for IMAP LOGIN and POP3 USER/PASS

	// User is the login name as the client sent it (the authentication
	// identity for SASL). The passdb and userdb chains complete it
	// (auth_default_realm, then auth_username_format) on their own copy
	// before any database sees it; a database reads the completed name.
	User string
	// AuthzID is the requested authorization identity of a SASL exchange,
	// "" when the client asked for none.
	AuthzID string
	// Password is the plaintext password when the mechanism carried one.
	// It is never logged.
	Password string
	// NoPassword marks a lookup that carries no password at all (LMTP, the
	// auth lookup tool): databases answer from their data without verifying.
	NoPassword bool

	Remote netip.AddrPort // client address (after PROXY protocol / trusted ID)
	Local  netip.AddrPort // address the client connected to
	// Secured is true when the connection is TLS, from a trusted network, or
	// local (Dovecot's %c / "secured").
	Secured bool
	TLS     bool // the client connection is TLS-protected

	Session string // session id, for logs and the backend (x-session-id)
}

// Username returns the user part of User ("alice" for "alice@example.com"),
// Dovecot's %n.
func (r *Request) Username() string {
	u, _ := splitUser(r.User)
	return u
}

// Domain returns the domain part of User, "" when it has none: Dovecot's %d.
func (r *Request) Domain() string {
	_, d := splitUser(r.User)
	return d
}

func splitUser(user string) (local, domain string) {
	for i := len(user) - 1; i >= 0; i-- {
		if user[i] == '@' {
			return user[:i], user[i+1:]
		}
	}
	return user, ""
}
