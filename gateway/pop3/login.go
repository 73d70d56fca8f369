// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"context"
	"errors"
	"strings"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// plaintextDisallowed refuses USER, PASS and plaintext SASL on a
// connection that is not secured, with Dovecot's text.
const plaintextDisallowed = "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."

// userCmd runs USER name (RFC 1939 7). The name is the rest of the line,
// as Dovecot takes it; nothing is checked before PASS, not even that
// there is one (pop3-login answers +OK and lets the login fail).
func (ss *session) userCmd(cmd *command) error {
	if !ss.c.PlaintextAllowed() {
		ss.c.Log.Info("plaintext login refused on an insecure connection")
		return ss.c.Printf(plaintextDisallowed)
	}
	ss.user, ss.hasUser = cmd.args, true
	return ss.c.Printf("+OK")
}

// pass runs PASS password (RFC 1939 7): the password is the rest of the
// line, spaces included.
func (ss *session) pass(ctx context.Context, cmd *command) (bool, error) {
	if !ss.c.PlaintextAllowed() {
		ss.c.Log.Info("plaintext login refused on an insecure connection")
		return false, ss.c.Printf(plaintextDisallowed)
	}
	if !ss.hasUser {
		return false, ss.bad("No username given.")
	}
	user := ss.user
	ss.user, ss.hasUser = "", false
	if user == "" {
		// No passdb knows the empty name: a failed login, without
		// asking one.
		return false, ss.RefuseLogin(user, replyAuthFailed)
	}
	return ss.proxyLogin(ctx, "", mechs.Outcome{User: user, Password: cmd.args})
}

// proxyLogin logs the client in on its backend and relays. It answers
// the client +OK only after the backend accepted the login.
func (ss *session) proxyLogin(ctx context.Context, mech string, o mechs.Outcome) (bool, error) {
	c := ss.c
	method := mech
	if method == "" {
		method = "USER/PASS"
	}
	return ss.Login(ctx, mech, o,
		func(ctx context.Context, b *gateway.BackendConn, t *gateway.Target) (string, error) {
			return backendLogin(ctx, b, c, t, ss.srv.Pipeline)
		},
		func(ok string) string { return ok }, failLine, method)
}

// Fixed replies to failed logins (RFC 2449 8 and RFC 3206 response codes,
// Dovecot's texts).
const (
	replyAuthFailed = "-ERR [AUTH] Authentication failed."
	replyTempFail   = "-ERR [SYS/TEMP] Temporary authentication failure."
	replyInternal   = "-ERR [SYS/PERM] Internal error occurred. Refer to server log for more information."
)

// failLine renders a failed login (ARCHITECTURE decision 6: fixed wire
// texts, details to the log). Only a definitive "no" gets [AUTH]: RFC
// 3206 reserves it for credentials, never for "try again later".
func failLine(outcome gateway.Outcome, reason string, err error) string {
	var inUse *inUseError
	switch {
	case errors.As(err, &inUse):
		// The backend's mailbox is locked by another session (Dovecot's
		// pop3_lock_session, mail_max_userip_connections): temporary, and
		// its own words tell the client what to do.
		return "-ERR " + gateway.OneLine(inUse.text)
	case outcome == gateway.OutcomeAuthFailed:
		return replyAuthFailed
	case outcome == gateway.OutcomeDisabled:
		if reason = gateway.OneLine(reason); reason != "" {
			// A reason with its own response code keeps it.
			if strings.HasPrefix(reason, "[") {
				return "-ERR " + reason
			}
			return "-ERR [AUTH] " + reason
		}
		return replyAuthFailed
	case outcome == gateway.OutcomeTempFail:
		return replyTempFail
	case outcome == gateway.OutcomeLimit:
		// Dovecot's pop3-login answers a limit as a temporary failure,
		// in the limit's own words.
		return "-ERR [SYS/TEMP] " + gateway.OneLine(reason)
	}
	return replyInternal
}
