// SPDX-License-Identifier: Apache-2.0

package ldap

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/maildirector/maildirector/auth"
)

// Pool sizes: searches are short, binds hold a connection for one
// round trip; a few of each keep lookups concurrent without flooding the
// directory.
const (
	searchConns = 4
	bindConns   = 4
)

// DB is one LDAP configuration: a passdb, a userdb, or both, sharing one
// connection pool for searches. It is safe for concurrent use.
type DB struct {
	s         *Settings
	search    *pool
	binds     *pool // connections for auth_bind user binds
	passAttrs *attrMap
	userAttrs *attrMap
}

// New validates s and prepares the pools. It does no I/O.
func New(s *Settings) (*DB, error) {
	db := &DB{s: s}
	var err error
	if db.passAttrs, err = parseAttrs(s.PassAttrs); err != nil {
		return nil, fmt.Errorf("pass_attrs: %w", err)
	}
	if db.userAttrs, err = parseAttrs(s.UserAttrs); err != nil {
		return nil, fmt.Errorf("user_attrs: %w", err)
	}
	for name, tmpl := range map[string]string{"pass_filter": s.PassFilter, "user_filter": s.UserFilter,
		"base": s.Base, "auth_bind_userdn": s.AuthBindUserDN} {
		if _, err := expandEscaped(tmpl, &auth.Request{}); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if db.search, err = newPool(s, true, searchConns); err != nil {
		return nil, err
	}
	if db.binds, err = newPool(s, false, bindConns); err != nil {
		return nil, err
	}
	return db, nil
}

// Close closes idle connections.
func (db *DB) Close() {
	db.search.close()
	db.binds.close()
}

// DefaultScheme is the scheme of stored passwords without a {SCHEME}.
func (db *DB) DefaultScheme() string { return db.s.DefaultPassScheme }

// Binds implements passdb.Binder: with auth_bind the directory itself
// checks passwords, by a bind as the user.
func (db *DB) Binds() bool { return db.s.AuthBind || db.s.AuthBindUserDN != "" }

// CacheKey implements passdb.CacheKeyer: a lookup depends on nothing but
// the expanded filter and base (or the bind DN template).
func (db *DB) CacheKey(req *auth.Request) (string, error) {
	if db.s.AuthBindUserDN != "" {
		return expandEscaped(db.s.AuthBindUserDN, req)
	}
	filter, err := expandEscaped(db.s.PassFilter, req)
	if err != nil {
		return "", err
	}
	base, err := expandEscaped(db.s.Base, req)
	return filter + "\x00" + base, err
}

// LookupPassdb finds the user with pass_filter and returns pass_attrs as
// fields (the stored password among them, unless auth_bind is on).
func (db *DB) LookupPassdb(ctx context.Context, req *auth.Request) (auth.Result, error) {
	if db.s.AuthBindUserDN != "" {
		// Dovecot: with auth_bind_userdn no search is made, so there is
		// nothing to look up and no pass_attrs.
		return auth.Result{}, auth.Internal("passdb ldap", errors.New("auth_bind_userdn cannot look users up without a password"))
	}
	e, st, err := db.find(ctx, req, db.s.PassFilter, db.passAttrs.fetch)
	if err != nil || st != auth.StatusOK {
		return auth.Result{Status: st}, err
	}
	return db.result(e, req, db.passAttrs)
}

// VerifyPassdb checks req.Password by binding as the user: the DN comes
// from auth_bind_userdn, or from a search with pass_filter, whose
// pass_attrs fields are returned on success.
func (db *DB) VerifyPassdb(ctx context.Context, req *auth.Request) (auth.Result, error) {
	if req.Password == "" {
		// An empty password would be an unauthenticated bind, which
		// servers accept: never bind with one (RFC 4513 5.1.2).
		return auth.Result{Status: auth.StatusPasswordMismatch}, nil
	}
	var (
		dn  string
		res = auth.Result{Status: auth.StatusOK, Fields: auth.Fields{}}
	)
	if db.s.AuthBindUserDN != "" {
		var err error
		if dn, err = expandEscaped(db.s.AuthBindUserDN, req); err != nil {
			return auth.Result{}, auth.Internal("passdb ldap", err)
		}
	} else {
		e, st, err := db.find(ctx, req, db.s.PassFilter, db.passAttrs.fetch)
		if err != nil || st != auth.StatusOK {
			return auth.Result{Status: st}, err
		}
		dn = e.DN
		if res, err = db.result(e, req, db.passAttrs); err != nil {
			return auth.Result{}, err
		}
		// With auth_bind the directory checks the password; a fetched
		// userPassword must not be checked again.
		delete(res.Fields, "password")
	}
	st, err := db.bind(ctx, dn, req.Password)
	if err != nil || st != auth.StatusOK {
		return auth.Result{Status: st}, err
	}
	return res, nil
}

// LookupUserdb finds the user with user_filter and returns user_attrs.
func (db *DB) LookupUserdb(ctx context.Context, req *auth.Request) (auth.Result, error) {
	e, st, err := db.find(ctx, req, db.s.UserFilter, db.userAttrs.fetch)
	if err != nil || st != auth.StatusOK {
		return auth.Result{Status: st}, err
	}
	return db.result(e, req, db.userAttrs)
}

func (db *DB) result(e *goldap.Entry, req *auth.Request, m *attrMap) (auth.Result, error) {
	f, err := m.fields(e, req)
	if err != nil {
		return auth.Result{}, auth.Internal("ldap: attributes", err)
	}
	res := auth.Result{Status: auth.StatusOK, Fields: f}
	if u, ok := f["user"]; ok {
		res.User = u
		delete(f, "user")
	}
	return res, nil
}

// find runs one search and insists on at most one entry: two users
// matching one login is a directory problem, never "take the first".
func (db *DB) find(ctx context.Context, req *auth.Request, filterTmpl string, attrs []string) (*goldap.Entry, auth.Status, error) {
	filter, err := expandEscaped(filterTmpl, req)
	if err != nil {
		return nil, 0, auth.Internal("ldap: filter", err)
	}
	base, err := expandEscaped(db.s.Base, req)
	if err != nil {
		return nil, 0, auth.Internal("ldap: base", err)
	}
	conn, err := db.search.get(ctx)
	if err != nil {
		return nil, 0, classify("ldap: connect", err)
	}
	setTimeout(ctx, conn)
	sr := goldap.NewSearchRequest(base, db.s.Scope, db.s.Deref, 2, 0, false, filter, attrs, nil)
	resp := conn.SearchAsync(ctx, sr, 2)
	var entries []*goldap.Entry
	for resp.Next() {
		if e := resp.Entry(); e != nil {
			entries = append(entries, e)
		}
	}
	serr := resp.Err()
	broken := serr != nil && isConnectionError(serr)
	db.search.put(conn, broken)
	switch {
	case len(entries) > 1:
		return nil, 0, auth.Internal("ldap: search", fmt.Errorf("filter %s matches more than one entry", filter))
	case serr != nil && goldap.IsErrorWithCode(serr, goldap.LDAPResultNoSuchObject) && strings.Contains(db.s.Base, "%"):
		// A per-domain base that does not exist: no such user.
		return nil, auth.StatusUserUnknown, nil
	case serr != nil:
		return nil, 0, classify("ldap: search", serr)
	case len(entries) == 0:
		return nil, auth.StatusUserUnknown, nil
	}
	return entries[0], auth.StatusOK, nil
}

// bind checks a user's password by binding as dn on a connection kept for
// user binds.
func (db *DB) bind(ctx context.Context, dn, password string) (auth.Status, error) {
	conn, err := db.binds.get(ctx)
	if err != nil {
		return 0, classify("ldap: connect", err)
	}
	setTimeout(ctx, conn)
	err = conn.Bind(dn, password)
	switch {
	case err == nil:
		db.binds.put(conn, false)
		return auth.StatusOK, nil
	case goldap.IsErrorWithCode(err, goldap.LDAPResultInvalidCredentials):
		db.binds.put(conn, false)
		return auth.StatusPasswordMismatch, nil
	case goldap.IsErrorWithCode(err, goldap.LDAPResultNoSuchObject):
		db.binds.put(conn, false)
		return auth.StatusUserUnknown, nil
	}
	db.binds.put(conn, isConnectionError(err))
	return 0, classify("ldap: bind", err)
}

func setTimeout(ctx context.Context, c *goldap.Conn) {
	t := requestTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < t {
		t = max(time.Until(dl), time.Millisecond)
	}
	c.SetTimeout(t)
}

// isConnectionError reports errors after which the connection cannot be
// trusted any more.
func isConnectionError(err error) bool {
	return goldap.IsErrorAnyOf(err, goldap.ErrorNetwork, goldap.LDAPResultServerDown,
		goldap.LDAPResultTimeout, goldap.LDAPResultUnavailable, goldap.LDAPResultBusy) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}
