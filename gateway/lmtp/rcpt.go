// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/gateway"
)

// rcpt handles RCPT TO: look the user up, route it, and pass the RCPT to
// its backend, whose reply is the client's reply (Dovecot's LMTP proxy
// does the same): 250 only when the backend said 250.
func (s *session) rcpt(ctx context.Context, arg string) {
	if !s.inMail {
		s.badReply(reply{503, "5.5.0", "MAIL needed first"})
		return
	}
	addr, params, err := parsePath(arg, "TO:")
	switch {
	case errors.Is(err, errNoPrefix):
		s.badReply(invalidParameters)
		return
	case err != nil:
		s.badReply(reply{501, "5.5.4", "Invalid TO: " + err.Error()})
		return
	case addr == "":
		s.badReply(reply{501, "5.5.4", "Invalid TO: Null path not allowed"})
		return
	case len(params) > 0:
		// No RCPT parameter is announced (no DSN), as in Dovecot.
		s.reply(unsupportedParameters)
		return
	}
	if s.srv.MaxRecipients > 0 && len(s.rcpts) >= s.srv.MaxRecipients {
		s.srv.Pipeline.Obs().LMTPRecipient("tempfail") // the client retries it in a later transaction
		s.reply(reply{452, "4.5.3", "Too many recipients"})
		return
	}
	r := s.route(ctx, addr)
	if r.code >= 400 {
		// Refused at RCPT: that is this recipient's final answer.
		s.srv.Pipeline.Obs().LMTPRecipient(r.result())
	}
	s.reply(r)
}

func (s *session) route(ctx context.Context, addr string) reply {
	c := s.c
	log := c.Log.With("rcpt", addr)
	if c.TTL <= 1 {
		log.Error("lmtp: proxy TTL reached zero: a delivery loop")
		return reply{554, "5.4.6", fmt.Sprintf("<%s> Proxying loops - TTL reached zero", addr)}
	}
	r := splitRecipient(addr, s.srv.RecipientDelimiter)
	req := &auth.Request{Service: "lmtp", User: r.user, NoPassword: true,
		Remote: c.Remote, Local: c.Local, Secured: c.Secured(), TLS: c.TLS, Session: c.Session}
	res, err := s.srv.Lookup.Lookup(ctx, req)
	if res.User != "" {
		// The name the chain made of the recipient (auth.default_realm,
		// auth.username_format): the one logins of this user log too.
		log = log.With("user", res.User)
	}
	switch {
	case err != nil:
		log.Warn("lmtp: lookup failed", "reason", err)
		return tempFail(addr)
	case res.Status == auth.StatusUserUnknown, res.Status == auth.StatusUserDisabled:
		log.Info("lmtp: unknown user")
		return unknownUser(addr)
	case res.Status != auth.StatusOK:
		log.Warn("lmtp: lookup gave no usable answer", "status", res.Status)
		return tempFail(addr)
	}
	// nologin is about logins; mail is still delivered (Dovecot's LMTP
	// proxy ignores it too).
	if res.Fields.Has("nologin") {
		res.Fields = res.Fields.Clone()
		delete(res.Fields, "nologin")
	}
	rctx := ctx
	if len(s.rcpts) > 0 {
		// This transaction holds leases already: waiting for a move of
		// this recipient could wait for ourselves.
		rctx = director.WithoutHoldWait(ctx)
	}
	t, err := s.srv.Pipeline.Route(rctx, req, res)
	if err != nil {
		log.Warn("lmtp: routing failed", "reason", err)
		if auth.KindOf(err) == auth.KindInternal && strings.Contains(err.Error(), "loops") {
			return reply{554, "5.4.6", fmt.Sprintf("<%s> Proxying loops to itself", addr)}
		}
		if auth.KindOf(err) == auth.KindTemporary {
			return routeFail(addr)
		}
		return tempFail(addr)
	}
	log = log.With("backend", t.Addr(), "route", t.Route)
	be, failure := s.backendFor(ctx, t, addr, log)
	if be == nil {
		t.Release()
		return failure
	}
	to := r.rewrite(t.User)
	queued := be.mailQueued
	mr, rr, err := be.rcptTo(to)
	if queued && (err != nil || !mr.ok()) {
		if mr.code == 0 {
			be.failed = err
		} else {
			be.failed = errors.Join(errors.New("MAIL FROM refused"), fmtErr(mr, nil))
		}
		t.Release()
		if err != nil && mr.code == 0 {
			log.Warn("lmtp: backend lost at MAIL FROM", "reason", err)
			return backendFail(addr)
		}
		// The backend's own verdict on the sender stands for its
		// recipients (a 5xx there is the backend's to give).
		return mr
	}
	if err != nil {
		be.failed = err
		t.Release()
		log.Warn("lmtp: backend lost at RCPT", "reason", err)
		return backendFail(addr)
	}
	if !rr.ok() {
		t.Release()
		log.Info("lmtp: backend refused recipient", "reply", rr.String())
		return rr
	}
	rc := &rcpt{addr: addr, to: to, be: be, target: t}
	be.rcpts = append(be.rcpts, rc)
	s.rcpts = append(s.rcpts, rc)
	return rr
}

// backendFor returns the transaction's connection to t's backend, opening
// it (and sending MAIL FROM) for the first recipient there. When it cannot,
// the reply says what the recipient gets.
func (s *session) backendFor(ctx context.Context, t *gateway.Target, addr string, log interface{ Warn(string, ...any) }) (*backend, reply) {
	key := fmt.Sprintf("%s/%d/%v", t.Addr(), t.TLS, t.AnyCert)
	if be, ok := s.backends[key]; ok {
		if be.failed != nil {
			return nil, backendFail(addr)
		}
		return be, reply{}
	}
	dctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	be, err := s.dialBackend(dctx, t)
	if err != nil {
		log.Warn("lmtp: backend unavailable", "reason", err)
		if auth.KindOf(err) == auth.KindInternal {
			return nil, tempFail(addr)
		}
		return nil, backendFail(addr)
	}
	if hasCap(be.caps, "PIPELINING") {
		// MAIL FROM goes with the first RCPT TO; route reads its reply.
		be.queueMail(s.from, s.params)
		s.backends[key] = be
		return be, reply{}
	}
	mr, err := be.mail(s.from, s.params)
	if err != nil || !mr.ok() {
		be.failed = errors.Join(errors.New("MAIL FROM refused"), fmtErr(mr, err))
		s.backends[key] = be
		if err != nil {
			return nil, backendFail(addr)
		}
		// The backend's own verdict on the sender stands for its
		// recipients (a 5xx there is the backend's to give).
		return nil, mr
	}
	s.backends[key] = be
	return be, reply{}
}
