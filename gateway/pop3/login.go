// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// plaintextDisallowed refuses USER, PASS and plaintext SASL on a
// connection that is not secured, with Dovecot's text.
const plaintextDisallowed = "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."

// userCmd runs USER name (RFC 1939 7). The name is the rest of the line,
// as Dovecot takes it; nothing is checked before PASS.
func (ss *session) userCmd(cmd *command) error {
	if !ss.plaintextAllowed() {
		ss.c.Log.Info("plaintext login refused on an insecure connection")
		return ss.c.Printf(plaintextDisallowed)
	}
	if cmd.args == "" {
		return ss.bad("Missing user name.")
	}
	ss.user, ss.hasUser = cmd.args, true
	return ss.c.Printf("+OK")
}

// pass runs PASS password (RFC 1939 7): the password is the rest of the
// line, spaces included.
func (ss *session) pass(ctx context.Context, cmd *command) (bool, error) {
	if !ss.plaintextAllowed() {
		ss.c.Log.Info("plaintext login refused on an insecure connection")
		return false, ss.c.Printf(plaintextDisallowed)
	}
	if !ss.hasUser {
		return false, ss.bad("No username given.")
	}
	user := ss.user
	ss.user, ss.hasUser = "", false
	return ss.proxyLogin(ctx, "", mechs.Credentials{User: user, Password: cmd.args})
}

// proxyLogin authenticates creds, logs in on the backend and relays. It
// answers the client +OK only after the backend accepted the login.
func (ss *session) proxyLogin(ctx context.Context, mech string, creds mechs.Credentials) (bool, error) {
	c := ss.c
	req := &auth.Request{
		Service:  "pop3",
		Mech:     mech,
		User:     creds.User,
		AuthzID:  creds.AuthzID,
		Password: creds.Password,
		Remote:   c.Remote,
		Local:    c.Local,
		Secured:  c.Secured(),
		TLS:      c.TLS,
		Session:  c.Session,
	}
	log := c.Log.With("user", creds.User)
	if mech == "" {
		mech = "USER/PASS"
	}
	if c.TTL <= 1 {
		return false, ss.fail(log, auth.Internal("proxy", errors.New("proxying loops: TTL reached zero")))
	}
	start := time.Now()
	t, err := ss.srv.Pipeline.Authenticate(ctx, req)
	if err != nil {
		return false, ss.fail(log, err)
	}
	defer t.Release()
	log = log.With("backend", t.Addr(), "route", t.Route)
	// One budget covers connecting (with retries) and logging in, so that
	// a backend that accepts connections but never answers is as bounded
	// as one that refuses them.
	deadline := time.Now().Add(t.Timeout)
	loginCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	b, err := ss.srv.Pipeline.Connect(loginCtx, t, c.Remote, c.Local)
	if err != nil {
		return false, ss.fail(log, err)
	}
	b.Conn().SetDeadline(deadline)
	okLine, err := backendLogin(loginCtx, b, c, t, ss.srv.Pipeline)
	if err != nil {
		b.Close()
		// Only the backend's "wrong password" is a failed login to
		// penalize; [IN-USE] and [SYS/TEMP] are not the client's fault.
		var refused *gateway.Refused
		if errors.As(err, &refused) {
			ss.srv.Pipeline.LoginFailed(ctx, req, "backend refused the login")
		}
		return false, ss.fail(log, err)
	}
	if err := c.Printf("%s", okLine); err != nil {
		b.Close()
		return true, nil
	}
	log.Info("proxy: logged in", "method", mech, "latency", time.Since(start).Round(time.Millisecond))
	sess := &gateway.Session{ID: c.Session, Service: "pop3", User: t.Account, Backend: t.Addr(), Remote: c.Remote, Started: time.Now()}
	in, out := gateway.Relay(c, b, sess, ss.srv.Registry)
	log.Info("proxy: disconnected", "bytes_in", in, "bytes_out", out, "duration", time.Since(sess.Started).Round(time.Second))
	return true, nil
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
func (ss *session) fail(log *slog.Logger, err error) error {
	var line string
	var inUse *inUseError
	outcome, reason := gateway.OutcomeOf(err)
	switch {
	case errors.As(err, &inUse):
		// The backend's mailbox is locked by another session (Dovecot's
		// pop3_lock_session, mail_max_userip_connections): temporary, and
		// its own words tell the client what to do.
		log.Info("login failed: mailbox in use", "reason", err)
		line = "-ERR " + oneLine(inUse.text)
	case outcome == gateway.OutcomeAuthFailed:
		log.Info("login failed", "reason", err)
		line = replyAuthFailed
	case outcome == gateway.OutcomeDisabled:
		log.Info("login refused: nologin", "reason", err)
		line = replyAuthFailed
		if reason = oneLine(reason); reason != "" {
			// A reason with its own response code keeps it.
			if strings.HasPrefix(reason, "[") {
				line = "-ERR " + reason
			} else {
				line = "-ERR [AUTH] " + reason
			}
		}
	case outcome == gateway.OutcomeTempFail:
		log.Warn("login failed temporarily", "reason", err)
		line = replyTempFail
	default:
		log.Error("login failed: internal error", "reason", err)
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

// oneLine keeps a database- or backend-supplied text from breaking the
// protocol.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
