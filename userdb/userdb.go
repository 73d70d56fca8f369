// SPDX-License-Identifier: Apache-2.0

// Package userdb defines user databases (DB) and the Chain that consults
// them with Dovecot's rules. LMTP and the lookup tools use it to learn
// whether a user exists and which extra fields it has.
//
// It may import auth and passdb (for the rule vocabulary) only.
package userdb

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/passdb"
)

// DB is a user database. Contract as passdb.DB: StatusOK with fields, or
// StatusUserUnknown; errors when no answer could be had.
type DB interface {
	LookupUserdb(ctx context.Context, req *auth.Request) (auth.Result, error)
}

// Skip says when an entry is skipped: Dovecot's userdb skip setting.
type Skip uint8

const (
	SkipNever    Skip = iota
	SkipFound         // skip once an earlier entry found the user
	SkipNotFound      // skip while no earlier entry found the user
)

// ParseSkip reads "never", "found" or "notfound".
func ParseSkip(s string) (Skip, error) {
	switch s {
	case "", "never":
		return SkipNever, nil
	case "found":
		return SkipFound, nil
	case "notfound":
		return SkipNotFound, nil
	}
	return 0, fmt.Errorf("unknown skip %q (want never, found or notfound)", s)
}

// Entry is one user database in a chain.
type Entry struct {
	Name string
	// Driver names the entry's database kind, for metrics.
	Driver     string
	DB         DB
	Skip       Skip
	OnSuccess  passdb.Rule // default ReturnOK
	OnFailure  passdb.Rule // default Continue
	OnInternal passdb.Rule // default Continue
	// DefaultFields and OverrideFields are %variable templates set
	// before and after the lookup.
	DefaultFields  map[string]string
	OverrideFields map[string]string
}

// NewEntry returns an entry with Dovecot's default rules.
func NewEntry(name string, db DB) Entry {
	return Entry{Name: name, DB: db, OnSuccess: passdb.ReturnOK, OnFailure: passdb.Continue, OnInternal: passdb.Continue}
}

// Chain consults user databases in order.
type Chain struct {
	Entries []Entry
	// Username turns the name asked for into the one the databases know
	// (auth.default_realm, auth.username_chars, auth.username_format):
	// the passdb chain's Username, so that a user has one name whichever
	// chain is asked. nil leaves names as they are. ok false refuses the
	// name as an unknown user.
	Username func(name string) (fixed string, ok bool, err error)
	Log      *slog.Logger
	// Observe, when set, is told of every entry's answer and its time.
	Observe auth.ObserveFunc
}

// Lookup finds req.User: found anywhere wins; else an internal failure on
// the way; else "unknown user".
func (c *Chain) Lookup(ctx context.Context, req *auth.Request) (auth.Result, error) {
	var (
		found        bool
		seenInternal error
		fields       = auth.Fields{}
		lastErr      error
	)
	r := *req
	if c.Username != nil {
		fixed, ok, err := c.Username(r.User)
		if err != nil {
			return auth.Result{}, err
		}
		if !ok {
			c.log().Info("userdb: invalid characters in user name", "user", r.User)
			return auth.Result{Status: auth.StatusUserUnknown}, nil
		}
		r.User = fixed
	}
	user := r.User
	for i := 0; i < len(c.Entries); i++ {
		e := &c.Entries[i]
		if (e.Skip == SkipFound && found) || (e.Skip == SkipNotFound && !found) {
			continue
		}
		asked := time.Now()
		res, err := e.DB.LookupUserdb(ctx, &r)
		if c.Observe != nil {
			c.Observe(e.Name, e.Driver, auth.Outcome(res, err), time.Since(asked))
		}
		lastErr = err
		var rule passdb.Rule
		switch {
		case err != nil:
			rule = e.OnInternal
		case res.Status == auth.StatusOK:
			rule = e.OnSuccess
			if err := apply(e, &r, res, fields); err != nil {
				return auth.Result{}, auth.Internal("userdb "+e.Name, err)
			}
			if res.User != "" {
				user, r.User = res.User, res.User
			}
		default:
			rule = e.OnFailure
		}
		cont := false
		switch rule {
		case passdb.ReturnOK:
			found = true
		case passdb.ReturnFail:
			found = false
		case passdb.Continue:
			cont = true
			if err == nil && res.Status == auth.StatusOK {
				found = true // a found user stays found unless a rule says fail
			}
		case passdb.ContinueOK:
			cont, found = true, true
		case passdb.ContinueFail:
			cont, found = true, false
		}
		if err != nil && cont {
			seenInternal = err
		}
		if !cont {
			break
		}
	}
	switch {
	case found:
		return auth.Result{Status: auth.StatusOK, User: user, Fields: fields}, nil
	case seenInternal != nil:
		return auth.Result{}, seenInternal
	case lastErr != nil:
		return auth.Result{}, lastErr
	}
	return auth.Result{Status: auth.StatusUserUnknown, User: user}, nil
}

func (c *Chain) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}

func apply(e *Entry, req *auth.Request, res auth.Result, into auth.Fields) error {
	f := auth.Fields{}
	for k, tmpl := range e.DefaultFields {
		v, err := auth.Expand(tmpl, req.Vars(), nil)
		if err != nil {
			return err
		}
		f[k] = v
	}
	for k, v := range res.Fields {
		f[k] = v
	}
	for k, tmpl := range e.OverrideFields {
		v, err := auth.Expand(tmpl, req.Vars(), nil)
		if err != nil {
			return err
		}
		f[k] = v
	}
	for k, v := range f {
		into[k] = v
	}
	return nil
}
