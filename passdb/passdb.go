// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"
	"fmt"
	"strings"

	"github.com/maildirector/maildirector/auth"
)

// DB is a password database.
//
// Contract: a nil error means the Result's Status is a definitive answer:
// StatusOK with the user's extra fields, among them the stored password
// ("password", "{SCHEME}..." or in the database's default scheme) or
// "nopassword"; or StatusUserUnknown. A non-nil error means no answer
// could be obtained; it is classified with auth.KindOf, so a driver says
// "no such user" only on purpose, never because a server was down.
type DB interface {
	LookupPassdb(ctx context.Context, req *auth.Request) (auth.Result, error)
}

// Binder is implemented by databases that can check a password themselves
// (LDAP auth_bind). When Binds reports true, the chain asks VerifyPassdb
// instead of comparing a stored password; it answers StatusOK,
// StatusPasswordMismatch or StatusUserUnknown.
type Binder interface {
	Binds() bool
	VerifyPassdb(ctx context.Context, req *auth.Request) (auth.Result, error)
}

// DefaultSchemer is implemented by databases with a default password
// scheme (default_pass_scheme) for stored passwords without a prefix.
type DefaultSchemer interface {
	DefaultScheme() string
}

// CacheKeyer is implemented by databases whose answers may be cached: the
// key says what the lookup depends on (for LDAP, the expanded filter and
// base; for SQL, the query's bound values). Databases without it are not
// cached.
type CacheKeyer interface {
	CacheKey(req *auth.Request) (string, error)
}

// Rule says what the chain does after an entry answered: Dovecot's
// result_success, result_failure and result_internalfail values.
type Rule uint8

const (
	ReturnOK     Rule = iota // stop: success
	Return                   // stop with what the chain concluded so far
	ReturnFail               // stop: failure
	Continue                 // go on to the next entry
	ContinueOK               // go on, remembering success
	ContinueFail             // go on, remembering failure
)

// ParseRule reads a Dovecot rule name ("return-ok", "continue", ...).
func ParseRule(s string) (Rule, error) {
	switch s {
	case "return-ok":
		return ReturnOK, nil
	case "return":
		return Return, nil
	case "return-fail":
		return ReturnFail, nil
	case "continue":
		return Continue, nil
	case "continue-ok":
		return ContinueOK, nil
	case "continue-fail":
		return ContinueFail, nil
	}
	return 0, fmt.Errorf("unknown rule %q (want return-ok, return, return-fail, continue, continue-ok or continue-fail)", s)
}

// Skip says when an entry is skipped: Dovecot's skip setting.
type Skip uint8

const (
	SkipNever           Skip = iota
	SkipAuthenticated        // skip once an earlier entry succeeded
	SkipUnauthenticated      // skip until an earlier entry succeeded
)

// ParseSkip reads "never", "authenticated" or "unauthenticated".
func ParseSkip(s string) (Skip, error) {
	switch s {
	case "", "never":
		return SkipNever, nil
	case "authenticated":
		return SkipAuthenticated, nil
	case "unauthenticated":
		return SkipUnauthenticated, nil
	}
	return 0, fmt.Errorf("unknown skip %q (want never, authenticated or unauthenticated)", s)
}

// Entry is one database in a chain, with Dovecot's per-passdb settings.
type Entry struct {
	Name string
	// Driver names the entry's database kind ("ldap", "sql", ...) for
	// metrics.
	Driver string
	DB     DB
	// DefaultScheme overrides the database's own default scheme.
	DefaultScheme string
	Skip          Skip
	OnSuccess     Rule // default ReturnOK; "pass = yes" means Continue
	OnFailure     Rule // default Continue
	OnInternal    Rule // default Continue
	// Deny: a user this database knows is refused (a deny list).
	Deny bool
	// Master: the entry authenticates master users (user*master logins
	// and SASL authorization identities), not ordinary ones.
	Master bool
	// Mechanisms limits the entry to these SASL mechanisms (upper case;
	// "" stands for a login without SASL, such as IMAP LOGIN). nil: all.
	Mechanisms []string
	// UsernameFilter: user names must match one of the positive patterns
	// (if any) and none of the "!" ones; "*" and "?" are wildcards.
	UsernameFilter []string
	// DefaultFields are set before the lookup (the database may change
	// them); OverrideFields after it. Values are %variable templates.
	DefaultFields  map[string]string
	OverrideFields map[string]string
	// Cache, when not nil, remembers this entry's answers.
	Cache *Cache
}

// NewEntry returns an entry with Dovecot's default rules.
func NewEntry(name string, db DB) Entry {
	return Entry{Name: name, DB: db, OnSuccess: ReturnOK, OnFailure: Continue, OnInternal: Continue}
}

func (e *Entry) defaultScheme() string {
	if e.DefaultScheme != "" {
		return e.DefaultScheme
	}
	if ds, ok := e.DB.(DefaultSchemer); ok {
		return ds.DefaultScheme()
	}
	return "PLAIN"
}

// wants reports whether the entry applies to req (mechanisms,
// username_filter); skip rules are the chain's business.
func (e *Entry) wants(req *auth.Request) bool {
	if e.Mechanisms != nil {
		found := false
		for _, m := range e.Mechanisms {
			if strings.EqualFold(m, req.Mech) || (m == "none" && req.Mech == "") {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return usernameMatches(e.UsernameFilter, req.User)
}

// usernameMatches applies Dovecot's username_filter.
func usernameMatches(filter []string, user string) bool {
	if len(filter) == 0 {
		return true
	}
	positive, matched := false, false
	for _, p := range filter {
		if neg, ok := strings.CutPrefix(p, "!"); ok {
			if wildcardMatch(neg, user) {
				return false
			}
			continue
		}
		positive = true
		if wildcardMatch(p, user) {
			matched = true
		}
	}
	return !positive || matched
}

// wildcardMatch matches s against a pattern with * and ?.
func wildcardMatch(pattern, s string) bool {
	// One backtrack point (the last '*'), not recursion: the name comes
	// from the client, and trying every split for every '*' would let a
	// long name against a pattern with several '*' take seconds.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case star >= 0:
			// Let the last '*' take one more byte and try again.
			mark++
			p, i = star+1, mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
