// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"context"
	"errors"
	"log/slog"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
)

// refusal is a command's end without a backend: the reply code and the
// text the client prints (fixed texts: details go to the gateway's log).
type refusal struct {
	code, text string
}

// Fixed texts. The client prints them after "remote(GATEWAY): ".
var (
	errNoUser = refusal{codeUsage, "maildirector: this command needs a user (-u USER): " +
		"the gateway runs each command on its user's backend, and -A is expanded by the doveadm client"}
	errKickMask = refusal{codeUsage, "maildirector: kick through the gateway takes one user name " +
		"(and optionally IP ranges): kicking by IP or wildcard alone would mean every backend; run it on the backends"}
	errServerWide = refusal{codeNoPerm, "maildirector: this command acts on a whole doveadm server, " +
		"not on one user's mail: run it against the backends themselves"}
	errNUL          = refusal{codeUsage, "maildirector: NUL byte in the command"}
	errUnknownUser  = refusal{codeNoUser, "User doesn't exist"}
	errLookup       = refusal{codeTempFail, "maildirector: user lookup failed (temporary failure)"}
	errRouting      = refusal{codeTempFail, "maildirector: routing temporarily unavailable"}
	errInternal     = refusal{codeTempFail, "maildirector: internal error (see the gateway's log)"}
	errBackendDown  = refusal{codeTempFail, "maildirector: the user's backend is not answering"}
	errBackendSetup = refusal{codeTempFail, "maildirector: the user's backend refused the gateway (see the gateway's log)"}
)

// route looks user up in the passdb chain and decides its backend, as a
// login would: a host field pins it, otherwise the director places it
// (holding the assignment until the caller releases the Target).
func (s *session) route(ctx context.Context, user string, log *slog.Logger) (*gateway.Target, *refusal) {
	c := s.c
	req := &auth.Request{Service: "doveadm", User: user, NoPassword: true,
		Remote: c.Remote, Local: c.Local, Secured: c.Secured(), TLS: c.TLS, Session: c.Session}
	res, err := s.srv.Lookup.Lookup(ctx, req)
	switch {
	case err != nil:
		log.Warn("doveadm: lookup failed", "reason", err)
		return nil, &errLookup
	case res.Status == auth.StatusUserUnknown, res.Status == auth.StatusUserDisabled:
		log.Info("doveadm: unknown user", "status", res.Status)
		return nil, &errUnknownUser
	case res.Status != auth.StatusOK:
		log.Warn("doveadm: lookup gave no usable answer", "status", res.Status)
		return nil, &errLookup
	}
	// nologin is about logins: an administrator still reaches a disabled
	// user's mail (Dovecot's doveadm proxy reads only the proxy fields).
	if res.Fields.Has("nologin") {
		res.Fields = res.Fields.Clone()
		delete(res.Fields, "nologin")
	}
	t, err := s.srv.Pipeline.Route(ctx, req, res)
	if err != nil {
		log.Warn("doveadm: routing failed", "reason", err)
		var r *gateway.Refused
		switch {
		case errors.As(err, &r):
			return nil, &errUnknownUser
		case auth.KindOf(err) == auth.KindTemporary:
			return nil, &errRouting
		}
		return nil, &errInternal
	}
	return t, nil
}
