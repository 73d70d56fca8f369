// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"context"
	"strings"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// login runs LOGIN user password (RFC 9051 6.2.3).
func (ss *session) login(ctx context.Context, cmd *command) (bool, error) {
	if len(cmd.args) != 2 {
		return false, ss.bad(cmd.tag, errCommand)
	}
	// imap-login reads both as strings: NIL is the name "NIL".
	user, ok1 := cmd.args[0].loginString()
	pass, ok2 := cmd.args[1].loginString()
	if !ok1 || !ok2 {
		return false, ss.bad(cmd.tag, errCommand)
	}
	if !ss.c.PlaintextAllowed() {
		ss.c.Log.Info("plaintext login refused on an insecure connection")
		// imap-login's warning first: the password has crossed the
		// network in the clear already.
		ss.c.Printf("* BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, but your client did it anyway. If anyone was listening, the password was exposed.")
		return false, ss.c.Printf("%s NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", cmd.tag)
	}
	return ss.proxyLogin(ctx, cmd.tag, "", mechs.Outcome{User: user, Password: pass})
}

// proxyLogin logs the client in on its backend and relays. It answers
// the client OK only after the backend accepted the login.
func (ss *session) proxyLogin(ctx context.Context, tag, mech string, o mechs.Outcome) (bool, error) {
	c := ss.c
	method := mech
	if method == "" {
		method = "LOGIN command"
	}
	return ss.Login(ctx, mech, o,
		func(ctx context.Context, b *gateway.BackendConn, t *gateway.Target) (string, error) {
			return backendLogin(ctx, b, c, t, ss.srv.Pipeline)
		},
		func(ok string) string { return tag + " " + ok }, tagged(tag), method)
}

// tagged renders failed logins of the command tag.
func tagged(tag string) func(gateway.Outcome, string, error) string {
	return func(o gateway.Outcome, reason string, _ error) string { return tag + " " + failLine(o, reason) }
}

// failLine renders a failed login (ARCHITECTURE decision 6: fixed wire
// texts, details to the log line LoginVerdict writes).
func failLine(outcome gateway.Outcome, reason string) string {
	switch outcome {
	case gateway.OutcomeAuthFailed:
		return "NO [AUTHENTICATIONFAILED] Authentication failed."
	case gateway.OutcomeDisabled:
		if reason = gateway.OneLine(reason); reason != "" {
			// Dovecot shows the passdb's reason as an alert unless it
			// carries its own response code.
			if strings.HasPrefix(reason, "[") {
				return "NO " + reason
			}
			return "NO [ALERT] " + reason
		}
		return "NO [AUTHENTICATIONFAILED] Authentication failed."
	case gateway.OutcomeTempFail:
		return "NO [UNAVAILABLE] Temporary authentication failure."
	case gateway.OutcomeLimit:
		// RFC 5530 LIMIT: the client should not retry at once, as it
		// would after UNAVAILABLE.
		return "NO [LIMIT] " + gateway.OneLine(reason)
	}
	return "NO [SERVERBUG] Internal error occurred. Refer to server log for more information."
}
