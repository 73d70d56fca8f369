// SPDX-License-Identifier: Apache-2.0

// Package static is Dovecot's static passdb: every user gets the same
// answer, configured by an args string such as "proxy=y nopassword=y"
// (the backend then checks the password) or "password=secret host=10.0.0.1".
//
// It may import auth only.
package static

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"

	"github.com/maildirector/maildirector/auth"
)

// DB is a static passdb. It is safe for concurrent use.
type DB struct {
	password   string // plaintext; "" with nopassword
	nopassword bool
	fields     map[string]string // templates, expanded per request
}

// New parses Dovecot's static passdb args: space-separated key=value pairs
// (a bare key is a boolean field). "password" and "nopassword" say how the
// password is checked; every other key is returned as an extra field, with
// %variables expanded per request.
func New(args string) (*DB, error) {
	db := &DB{fields: map[string]string{}}
	for _, kv := range strings.Fields(args) {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("static passdb: empty key in %q", kv)
		}
		switch k {
		case "password":
			pw, err := plainPassword(v)
			if err != nil {
				return nil, err
			}
			db.password = pw
		case "nopassword":
			db.nopassword = v == "" || auth.Fields{k: v}.Has(k)
		default:
			if _, err := auth.Expand(v, checkVars, nil); err != nil {
				return nil, fmt.Errorf("static passdb: field %s: %w", k, err)
			}
			db.fields[k] = v
		}
	}
	if !db.nopassword && db.password == "" {
		// Dovecot would answer "password mismatch" to everyone; say it now.
		return nil, errors.New("static passdb: args need password=... or nopassword=y")
	}
	return db, nil
}

// checkVars accepts the names a Request can expand, so that typos fail at
// start-up rather than at the first login.
func checkVars(name string) (string, bool) {
	return (&auth.Request{}).Vars()(name)
}

// plainPassword accepts a plaintext password with or without Dovecot's
// {PLAIN}/{CLEAR}/{CLEARTEXT} prefix. Hashed schemes need the password
// package, which is not wired in yet.
func plainPassword(v string) (string, error) {
	if !strings.HasPrefix(v, "{") {
		return v, nil
	}
	end := strings.IndexByte(v, '}')
	if end < 0 {
		return v, nil
	}
	switch strings.ToUpper(v[1:end]) {
	case "PLAIN", "CLEAR", "CLEARTEXT":
		return v[end+1:], nil
	}
	return "", fmt.Errorf("static passdb: password scheme %s is not supported yet (use a plaintext password)", v[:end+1])
}

// Verify implements passdb.DB.
func (db *DB) Verify(_ context.Context, req *auth.Request) (auth.Result, error) {
	res := auth.Result{Status: auth.StatusOK, Fields: make(auth.Fields, len(db.fields))}
	for k, tmpl := range db.fields {
		v, err := auth.Expand(tmpl, req.Vars(), nil)
		if err != nil {
			return auth.Result{}, auth.Internal("passdb static", err)
		}
		res.Fields[k] = v
	}
	if u, ok := res.Fields["user"]; ok {
		res.User = u
		delete(res.Fields, "user")
	}
	if req.NoPassword || db.nopassword {
		return res, nil
	}
	if subtle.ConstantTimeCompare([]byte(req.Password), []byte(db.password)) != 1 {
		return auth.Result{Status: auth.StatusPasswordMismatch}, nil
	}
	return res, nil
}
