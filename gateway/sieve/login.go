// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"context"
	"strings"

	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// proxyLogin logs the client in on its backend and relays. It answers
// the client OK only after the backend accepted the login.
func (ss *session) proxyLogin(ctx context.Context, mech string, o mechs.Outcome) (bool, error) {
	c := ss.c
	return ss.Login(ctx, mech, o,
		func(ctx context.Context, b *gateway.BackendConn, t *gateway.Target) (string, error) {
			return backendLogin(ctx, b, c, t, ss.srv.Pipeline)
		},
		func(ok string) string { return ok }, failLine, mech)
}

// Fixed replies to failed logins (RFC 5804 1.3 response codes).
const (
	textAuthFailed = `NO "Authentication failed."`
	textTryLater   = `NO (TRYLATER) "Temporary authentication failure."`
	textInternal   = `NO "Internal error occurred. Refer to server log for more information."`
)

// failLine renders a failed login — the one place that does (fixed wire
// texts, details to the log). A temporary failure never reads as a wrong
// password.
func failLine(outcome gateway.Outcome, reason string, _ error) string {
	switch outcome {
	case gateway.OutcomeAuthFailed:
		return textAuthFailed
	case gateway.OutcomeDisabled:
		if reason = gateway.OneLine(reason); strings.TrimSpace(reason) != "" {
			return "NO " + quote(reason)
		}
		return textAuthFailed
	case gateway.OutcomeTempFail:
		return textTryLater
	case gateway.OutcomeLimit:
		return "NO (TRYLATER) " + quote(gateway.OneLine(reason))
	}
	return textInternal
}
