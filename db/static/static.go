// SPDX-License-Identifier: Apache-2.0

// Package static is Dovecot's static passdb and userdb: every user gets
// the same answer, configured by an args string such as
// "proxy=y nopassword=y" (the backend then checks the password),
// "password={SSHA}..." or, for a userdb, "uid=vmail gid=vmail home=/srv/%u".
//
// It may import auth only.
package static

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/maildirector/maildirector/auth"
)

// DB is a static passdb or userdb. It is safe for concurrent use.
type DB struct {
	fields map[string]string // templates, expanded per request
}

// New parses Dovecot's static args: space-separated key=value pairs (a
// bare key is a boolean field), values being %variable templates.
// "password" (any Dovecot scheme, PLAIN by default) and "nopassword" say
// how a passdb checks the password; every other key is an extra field.
func New(args string) (*DB, error) {
	db := &DB{fields: map[string]string{}}
	for _, kv := range strings.Fields(args) {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("static: empty key in %q", kv)
		}
		if _, err := auth.Expand(v, (&auth.Request{}).Vars(), nil); err != nil {
			return nil, fmt.Errorf("static: field %s: %w", k, err)
		}
		db.fields[k] = v
	}
	return db, nil
}

// CheckPassdb reports a static passdb that could never let anyone in:
// Dovecot answers "password mismatch" to everyone then; we say so at
// start-up.
func (db *DB) CheckPassdb() error {
	_, pw := db.fields["password"]
	if !pw && !(auth.Fields(db.fields)).Has("nopassword") {
		return errors.New("static passdb: args need password=... or nopassword=y")
	}
	return nil
}

// DefaultScheme implements passdb.DefaultSchemer: a static password
// without {SCHEME} is plaintext.
func (db *DB) DefaultScheme() string { return "PLAIN" }

// LookupPassdb implements passdb.DB: every user exists.
func (db *DB) LookupPassdb(_ context.Context, req *auth.Request) (auth.Result, error) {
	return db.result(req)
}

// LookupUserdb implements userdb.DB: every user exists.
func (db *DB) LookupUserdb(_ context.Context, req *auth.Request) (auth.Result, error) {
	return db.result(req)
}

func (db *DB) result(req *auth.Request) (auth.Result, error) {
	res := auth.Result{Status: auth.StatusOK, Fields: make(auth.Fields, len(db.fields))}
	for k, tmpl := range db.fields {
		v, err := auth.Expand(tmpl, req.Vars(), nil)
		if err != nil {
			return auth.Result{}, auth.Internal("static", err)
		}
		res.Fields[k] = v
	}
	if u, ok := res.Fields["user"]; ok {
		res.User = u
		delete(res.Fields, "user")
	}
	return res, nil
}
