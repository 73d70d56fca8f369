// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"context"
	"strings"
	"time"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// proxyLogin logs the client in on its backend and relays. It answers
// the client OK only after the backend accepted the login.
func (ss *session) proxyLogin(ctx context.Context, mech string, o mechs.Outcome) (bool, error) {
	c := ss.c
	user := ss.srv.Pipeline.LogUser(c, "sieve", mech, o)
	start := time.Now()
	t, b, okLine, err := ss.srv.Pipeline.Login(ctx, c, "sieve", mech, o,
		func(ctx context.Context, b *gateway.BackendConn, t *gateway.Target) (string, error) {
			return backendLogin(ctx, b, c, t, ss.srv.Pipeline)
		})
	if err != nil {
		return false, ss.fail(user, start, err)
	}
	defer t.Release()
	ss.srv.Pipeline.Proxy(c, t, b, ss.srv.Registry, "sieve", mech, start, func() error { return c.Printf("%s", okLine) })
	return true, nil
}

// Fixed replies to failed logins (RFC 5804 1.3 response codes).
const (
	textAuthFailed = `NO "Authentication failed."`
	textTryLater   = `NO (TRYLATER) "Temporary authentication failure."`
	textInternal   = `NO "Internal error occurred. Refer to server log for more information."`
)

// fail renders a failed login — the one place that does (fixed wire
// texts, details to the log) — and counts it. A temporary failure never
// reads as a wrong password.
func (ss *session) fail(user string, started time.Time, err error) error {
	ss.srv.Pipeline.LoginVerdict(ss.c, "sieve", user, "", started, err)
	outcome, reason := gateway.OutcomeOf(err)
	var line string
	switch outcome {
	case gateway.OutcomeAuthFailed:
		line = textAuthFailed
	case gateway.OutcomeDisabled:
		line = textAuthFailed
		if reason = gateway.OneLine(reason); strings.TrimSpace(reason) != "" {
			line = "NO " + quote(reason)
		}
	case gateway.OutcomeTempFail:
		line = textTryLater
	case gateway.OutcomeLimit:
		line = "NO (TRYLATER) " + quote(gateway.OneLine(reason))
	default:
		line = textInternal
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
