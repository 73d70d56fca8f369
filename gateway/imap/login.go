// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"context"
	"strings"
	"time"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// login runs LOGIN user password (RFC 9051 6.2.3).
func (ss *session) login(ctx context.Context, cmd *command) (bool, error) {
	if len(cmd.args) != 2 {
		return false, ss.bad(cmd.tag, "Error in IMAP command LOGIN: Invalid arguments.")
	}
	user, ok1 := cmd.args[0].astring()
	pass, ok2 := cmd.args[1].astring()
	if !ok1 || !ok2 {
		return false, ss.bad(cmd.tag, "Error in IMAP command LOGIN: Invalid arguments.")
	}
	if !ss.c.PlaintextAllowed() {
		ss.c.Log.Info("plaintext login refused on an insecure connection")
		return false, ss.c.Printf("%s NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", cmd.tag)
	}
	return ss.proxyLogin(ctx, cmd.tag, "", mechs.Outcome{User: user, Password: pass})
}

// proxyLogin logs the client in on its backend and relays. It answers
// the client OK only after the backend accepted the login.
func (ss *session) proxyLogin(ctx context.Context, tag, mech string, o mechs.Outcome) (bool, error) {
	c := ss.c
	user := ss.srv.Pipeline.LogUser(c, "imap", mech, o)
	start := time.Now()
	t, b, okLine, err := ss.srv.Pipeline.Login(ctx, c, "imap", mech, o,
		func(ctx context.Context, b *gateway.BackendConn, t *gateway.Target) (string, error) {
			return backendLogin(ctx, b, c, t, ss.srv.Pipeline)
		})
	if err != nil {
		return false, ss.fail(tag, user, start, err)
	}
	defer t.Release()
	if mech == "" {
		mech = "LOGIN command"
	}
	ss.srv.Pipeline.Proxy(c, t, b, ss.srv.Registry, "imap", mech, start, func() error { return c.Printf("%s %s", tag, okLine) })
	return true, nil
}

// fail renders a failed login of user that began at started
// (ARCHITECTURE decision 6: fixed wire texts, details to the log line
// LoginVerdict writes) and counts it.
func (ss *session) fail(tag, user string, started time.Time, err error) error {
	ss.srv.Pipeline.LoginVerdict(ss.c, "imap", user, "", started, err)
	outcome, reason := gateway.OutcomeOf(err)
	var line string
	switch outcome {
	case gateway.OutcomeAuthFailed:
		line = "NO [AUTHENTICATIONFAILED] Authentication failed."
	case gateway.OutcomeDisabled:
		line = "NO [AUTHENTICATIONFAILED] Authentication failed."
		if reason = gateway.OneLine(reason); reason != "" {
			// Dovecot shows the passdb's reason as an alert unless it
			// carries its own response code.
			if strings.HasPrefix(reason, "[") {
				line = "NO " + reason
			} else {
				line = "NO [ALERT] " + reason
			}
		}
	case gateway.OutcomeTempFail:
		line = "NO [UNAVAILABLE] Temporary authentication failure."
	case gateway.OutcomeLimit:
		// RFC 5530 LIMIT: the client should not retry at once, as it
		// would after UNAVAILABLE.
		line = "NO [LIMIT] " + gateway.OneLine(reason)
	default:
		line = "NO [SERVERBUG] Internal error occurred. Refer to server log for more information."
	}
	ss.authFailures++
	if err := ss.c.Printf("%s %s", tag, line); err != nil {
		return err
	}
	if ss.authFailures >= ss.srv.MaxAuthFailures {
		return errTooManyAuthFailures
	}
	return nil
}
