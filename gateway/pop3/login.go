// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"context"
	"errors"
	"strings"
	"time"

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
		return false, ss.refuse(replyAuthFailed)
	}
	return ss.proxyLogin(ctx, "", mechs.Outcome{User: user, Password: cmd.args})
}

// proxyLogin logs the client in on its backend and relays. It answers
// the client +OK only after the backend accepted the login.
func (ss *session) proxyLogin(ctx context.Context, mech string, o mechs.Outcome) (bool, error) {
	c := ss.c
	user := ss.srv.Pipeline.LogUser(c, "pop3", mech, o)
	start := time.Now()
	t, b, okLine, err := ss.srv.Pipeline.Login(ctx, c, "pop3", mech, o,
		func(ctx context.Context, b *gateway.BackendConn, t *gateway.Target) (string, error) {
			return backendLogin(ctx, b, c, t, ss.srv.Pipeline)
		})
	if err != nil {
		return false, ss.fail(user, start, err)
	}
	defer t.Release()
	if mech == "" {
		mech = "USER/PASS"
	}
	ss.srv.Pipeline.Proxy(c, t, b, ss.srv.Registry, "pop3", mech, start, func() error { return c.Printf("%s", okLine) })
	return true, nil
}

// refuse answers a login that fails before any passdb is asked (an empty
// name, a SASL message the mechanism cannot read) and counts it.
func (ss *session) refuse(line string) error {
	ss.authFailures++
	if err := ss.c.Printf("%s", line); err != nil {
		return err
	}
	if ss.authFailures >= ss.srv.MaxAuthFailures {
		return errTooManyAuthFailures
	}
	return nil
}

// Fixed replies to failed logins (RFC 2449 8 and RFC 3206 response codes,
// Dovecot's texts).
const (
	replyAuthFailed = "-ERR [AUTH] Authentication failed."
	replyTempFail   = "-ERR [SYS/TEMP] Temporary authentication failure."
	replyInternal   = "-ERR [SYS/PERM] Internal error occurred. Refer to server log for more information."
)

// fail renders a failed login (ARCHITECTURE decision 6: fixed wire texts,
// details to the log) and counts it. Only a definitive "no" gets [AUTH]:
// RFC 3206 reserves it for credentials, never for "try again later".
func (ss *session) fail(user string, started time.Time, err error) error {
	ss.srv.Pipeline.LoginVerdict(ss.c, "pop3", user, "", started, err)
	var line string
	var inUse *inUseError
	outcome, reason := gateway.OutcomeOf(err)
	switch {
	case errors.As(err, &inUse):
		// The backend's mailbox is locked by another session (Dovecot's
		// pop3_lock_session, mail_max_userip_connections): temporary, and
		// its own words tell the client what to do.
		line = "-ERR " + gateway.OneLine(inUse.text)
	case outcome == gateway.OutcomeAuthFailed:
		line = replyAuthFailed
	case outcome == gateway.OutcomeDisabled:
		line = replyAuthFailed
		if reason = gateway.OneLine(reason); reason != "" {
			// A reason with its own response code keeps it.
			if strings.HasPrefix(reason, "[") {
				line = "-ERR " + reason
			} else {
				line = "-ERR [AUTH] " + reason
			}
		}
	case outcome == gateway.OutcomeTempFail:
		line = replyTempFail
	case outcome == gateway.OutcomeLimit:
		// Dovecot's pop3-login answers a limit as a temporary failure,
		// in the limit's own words.
		line = "-ERR [SYS/TEMP] " + gateway.OneLine(reason)
	default:
		line = replyInternal
	}
	ss.authFailures++
	if err := ss.c.Printf("%s", line); err != nil {
		return err
	}
	if ss.authFailures >= ss.srv.MaxAuthFailures {
		return errTooManyAuthFailures
	}
	return nil
}
