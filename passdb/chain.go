// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
)

// DefaultUsernameChars is Dovecot's default auth_username_chars.
const DefaultUsernameChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ01234567890.-_@"

// Chain consults password databases in order with Dovecot 2.3's rules
// (src/auth/auth-request.c): each entry's answer picks its result_* rule;
// "continue" rules go on to the next entry that is not skipped; at the
// end, a success anywhere wins, else any internal failure on the way wins
// (that database may have held the right password), else the last answer.
// Master entries authenticate "user*master" logins and SASL authorization
// identities before the ordinary entries look the user up.
type Chain struct {
	Entries []Entry
	Masters []Entry
	// DefaultRealm is appended as "@realm" to a name without "@" before
	// anything else looks at it (Dovecot's auth_default_realm; "" = off).
	DefaultRealm string
	// UsernameFormat is applied to login names after DefaultRealm
	// (default "%Lu").
	UsernameFormat string
	// MasterSeparator splits "user<sep>master" logins ("" = off).
	MasterSeparator string
	// UsernameChars lists the characters a user name may have ("" = any).
	UsernameChars string
	// HashLimit bounds concurrent stored-password checks (nil: no bound).
	HashLimit *HashLimit
	Log       *slog.Logger
	// Observe, when set, is told of every entry's answer and its time
	// (cache hits included: they are answers too, just quick ones).
	Observe auth.ObserveFunc
}

// Verify authenticates req with its password. Negative answers are
// results (StatusPasswordMismatch, StatusUserUnknown, StatusUserDisabled);
// errors mean no answer could be had.
func (c *Chain) Verify(ctx context.Context, req *auth.Request) (auth.Result, error) {
	return c.run(ctx, req, true)
}

// Lookup looks req.User up without a password (LMTP, the auth tools).
func (c *Chain) Lookup(ctx context.Context, req *auth.Request) (auth.Result, error) {
	return c.run(ctx, req, false)
}

// Credentials looks req.User up without a password and returns the
// stored password too, as "{SCHEME}data" (the entry's default scheme
// filled in), so that a SASL mechanism that never sees the plaintext
// (CRAM-MD5, DIGEST-MD5, SCRAM) can check the client's proof itself.
// Dovecot's lookup_credentials. The password is "" when the deciding
// passdb has none (nopassword, or auth_bind): such users cannot use those
// mechanisms.
func (c *Chain) Credentials(ctx context.Context, req *auth.Request) (res auth.Result, stored string, err error) {
	res, err = c.runKeep(ctx, req)
	if err != nil || res.Status != auth.StatusOK {
		return res, "", err
	}
	stored = res.Fields["password"]
	if res.Fields.Has("nopassword") {
		stored = ""
	}
	delete(res.Fields, "password")
	delete(res.Fields, "nopassword")
	return res, stored, nil
}

func (c *Chain) log() *slog.Logger {
	if c.Log == nil {
		return slog.Default()
	}
	return c.Log
}

// Username turns one name as a client gave it into the name every
// database, the director and the logs know the user by, in Dovecot 2.3's
// order (auth_request_fix_username in src/auth/auth-request.c):
// DefaultRealm is appended to a name without "@", the result is checked
// against UsernameChars, then UsernameFormat is applied. ok is false for a
// name with characters UsernameChars forbids (the login is refused before
// any database sees it). It does not split "user*master" logins
// (CanonicalUser does) and is applied once per name: the userdb chain
// (LMTP recipients, user lookup) uses it too.
func (c *Chain) Username(name string) (fixed string, ok bool, err error) {
	if c.DefaultRealm != "" && !strings.Contains(name, "@") {
		name += "@" + c.DefaultRealm
	}
	if c.UsernameChars != "" {
		for _, ch := range name {
			if !strings.ContainsRune(c.UsernameChars, ch) {
				return name, false, nil
			}
		}
	}
	format := c.UsernameFormat
	if format == "" {
		format = "%Lu"
	}
	v, err := auth.Expand(format, (&auth.Request{User: name}).Vars(), nil)
	if err != nil {
		return "", false, auth.Internal("auth_username_format", err)
	}
	return v, true, nil
}

// CanonicalUser returns the name of the user req logs in as, as the chain
// will know it (the "user" part of "user*master", or the SASL
// authorization identity, through Username), for log lines written before
// or without the chain's answer. A name Username refuses is returned as
// the client gave it.
func (c *Chain) CanonicalUser(req *auth.Request) string {
	r, ok, err := c.normalize(req)
	if err != nil || !ok {
		return req.User
	}
	if r.AuthzID != "" {
		return r.AuthzID
	}
	return r.User
}

// normalize splits a "user<sep>master" login and applies Username to both
// names, on a copy of req. ok is false for a name with forbidden characters.
// As in Dovecot, a master user's name gets DefaultRealm and UsernameFormat
// too (auth_request_set_login_username fixes both).
func (c *Chain) normalize(req *auth.Request) (*auth.Request, bool, error) {
	r := *req
	if c.MasterSeparator != "" && r.AuthzID == "" {
		if i := strings.LastIndex(r.User, c.MasterSeparator); i > 0 {
			r.AuthzID, r.User = r.User[:i], r.User[i+len(c.MasterSeparator):]
		}
	}
	for _, u := range []*string{&r.User, &r.AuthzID} {
		if *u == "" {
			continue
		}
		v, ok, err := c.Username(*u)
		if err != nil || !ok {
			return &r, ok, err
		}
		*u = v
	}
	return &r, true, nil
}

func (c *Chain) runKeep(ctx context.Context, req *auth.Request) (auth.Result, error) {
	return c.walk(ctx, req, false, true)
}

func (c *Chain) run(ctx context.Context, req *auth.Request, check bool) (auth.Result, error) {
	return c.walk(ctx, req, check, false)
}

func (c *Chain) walk(ctx context.Context, req0 *auth.Request, check, keep bool) (auth.Result, error) {
	req, ok, err := c.normalize(req0)
	if err != nil {
		return auth.Result{}, err
	}
	if !ok {
		c.log().Info("passdb: invalid characters in user name", "user", req0.User)
		return auth.Result{Status: auth.StatusUserUnknown}, nil
	}
	s := &state{chain: c, req: req, check: check, keep: keep, list: c.Entries, fields: auth.Fields{}}
	if req.AuthzID != "" && req.AuthzID != req.User {
		if len(c.Masters) == 0 {
			c.log().Info("passdb: master login attempted without master passdbs", "user", req.User, "login_user", req.AuthzID)
			return auth.Result{Status: auth.StatusUserUnknown, User: req.AuthzID}, nil
		}
		s.list, s.masterPhase = c.Masters, true
	}
	return s.walk(ctx)
}

// state is one walk through the chain.
type state struct {
	chain       *Chain
	req         *auth.Request
	check       bool // verify the password (false: lookup only)
	keep        bool // keep the stored password (Credentials)
	list        []Entry
	masterPhase bool
	master      string // master user, once authenticated

	success      bool
	seenInternal error
	fields       auth.Fields // from every entry that succeeded so far
	user         string      // canonical user, when an entry changed it
}

func (s *state) skip(e *Entry) bool {
	switch e.Skip {
	case SkipAuthenticated:
		if s.success {
			return true
		}
	case SkipUnauthenticated:
		if !s.success {
			return true
		}
	}
	return !e.wants(s.req)
}

// next returns the index of the first entry at or after i that is not
// skipped, or -1.
func (s *state) next(i int) int {
	for ; i < len(s.list); i++ {
		if !s.skip(&s.list[i]) {
			return i
		}
	}
	return -1
}

func (s *state) walk(ctx context.Context) (auth.Result, error) {
	log := s.chain.log()
	i := s.next(0)
	if i < 0 {
		return auth.Result{}, auth.Internal("passdb", errNoPassdb)
	}
	for {
		e := &s.list[i]
		asked := time.Now()
		res, err := query(ctx, log, s.chain.HashLimit, e, s.req, s.check || s.masterPhase, s.keep && !s.masterPhase)
		if s.chain.Observe != nil {
			s.chain.Observe(e.Name, e.Driver, auth.Outcome(res, err), time.Since(asked))
		}
		if e.Deny {
			switch {
			case err != nil:
				// A deny list that cannot answer must not let anyone in.
				return auth.Result{}, err
			case res.Status == auth.StatusOK:
				log.Info("passdb: user found from deny passdb", "passdb", e.Name, "user", s.req.User)
				return auth.Result{Status: auth.StatusUserDisabled, User: s.loginUser()}, nil
			}
			// Not on the deny list: on to the next entry, as if unasked.
			if i = s.next(i + 1); i < 0 {
				return s.finish(auth.Result{Status: auth.StatusUserUnknown}, nil)
			}
			continue
		}
		var rule Rule
		switch {
		case err != nil:
			rule = e.OnInternal
		case res.Status == auth.StatusUserDisabled:
			res.User = s.loginUser()
			return res, nil // exists, may not log in: no rule applies
		case res.Status == auth.StatusOK:
			rule = e.OnSuccess
		default:
			rule = e.OnFailure
		}
		cont := false
		switch rule {
		case ReturnOK:
			s.success = true
		case ReturnFail:
			s.success = false
		case Continue:
			cont = true
		case ContinueOK:
			cont, s.success = true, true
		case ContinueFail:
			cont, s.success = true, false
		}
		if err == nil && res.Status == auth.StatusOK {
			for k, v := range res.Fields {
				s.fields[k] = v
			}
			if res.User != "" {
				s.user, s.req.User = res.User, res.User
			}
		}
		nextIdx := i + 1
		if s.masterPhase && err == nil && res.Status == auth.StatusOK {
			// The master is authenticated; from here on the chain is about
			// the user it logs in as, whose own password is not asked for.
			s.master = s.req.User
			s.req.User, s.req.AuthzID = s.req.AuthzID, ""
			s.user = ""
			s.list, s.masterPhase, s.check, nextIdx = s.chain.Entries, false, false, 0
		}
		if cont {
			if n := s.next(nextIdx); n >= 0 {
				if err != nil {
					s.seenInternal = err
				}
				i = n
				continue
			}
		}
		return s.finish(res, err)
	}
}

// finish concludes the walk with the last entry's answer.
func (s *state) finish(last auth.Result, lastErr error) (auth.Result, error) {
	switch {
	case s.success:
		if s.masterPhase {
			// Only a master passdb answered: its user is not logged in.
			return auth.Result{Status: auth.StatusUserUnknown, User: s.loginUser()}, nil
		}
		return auth.Result{Status: auth.StatusOK, User: s.userName(), Master: s.master, Fields: s.fields}, nil
	case s.seenInternal != nil:
		return auth.Result{}, s.seenInternal
	case lastErr != nil:
		return auth.Result{}, lastErr
	case last.Status == auth.StatusOK:
		// A return-fail rule turned a success into a failure.
		return auth.Result{Status: auth.StatusPasswordMismatch, User: s.loginUser()}, nil
	}
	return auth.Result{Status: last.Status, User: s.loginUser()}, nil
}

// loginUser is the user a failed walk was about: the one logging in, not
// the master user logging in for it.
func (s *state) loginUser() string {
	if s.masterPhase {
		return s.req.AuthzID
	}
	return s.userName()
}

func (s *state) userName() string {
	if s.user != "" {
		return s.user
	}
	return s.req.User
}
