// SPDX-License-Identifier: Apache-2.0

package sql

import (
	"context"
	gosql "database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/maildirector/maildirector/auth"
)

// DB is one SQL configuration: passdb, userdb or both, sharing the
// connection pools. It is safe for concurrent use.
type DB struct {
	s         *Settings
	pools     []*gosql.DB // one per host, in configured order
	passQuery *query
	userQuery *query
	timeout   time.Duration // upper bound for one lookup

	mu   sync.Mutex
	good int // host that answered last
}

// New validates s and prepares (lazy) connection pools. It does no I/O.
func New(s *Settings) (*DB, error) {
	db := &DB{s: s}
	var err error
	if s.PasswordQuery != "" {
		if db.passQuery, err = compile(s.PasswordQuery); err != nil {
			return nil, fmt.Errorf("password_query: %w", err)
		}
	}
	if s.UserQuery != "" {
		if db.userQuery, err = compile(s.UserQuery); err != nil {
			return nil, fmt.Errorf("user_query: %w", err)
		}
	}
	for _, h := range s.Hosts {
		conn, err := mysql.NewConnector(h)
		if err != nil {
			return nil, err
		}
		p := gosql.OpenDB(conn)
		p.SetMaxOpenConns(s.MaxConns)
		p.SetMaxIdleConns(s.MaxConns)
		p.SetConnMaxIdleTime(5 * time.Minute)
		db.pools = append(db.pools, p)
		db.timeout = max(db.timeout, h.Timeout+h.ReadTimeout+h.WriteTimeout)
	}
	return db, nil
}

// Close closes the pools.
func (db *DB) Close() {
	for _, p := range db.pools {
		p.Close()
	}
}

// DefaultScheme is the scheme of stored passwords without a {SCHEME}.
func (db *DB) DefaultScheme() string { return db.s.DefaultPassScheme }

// CacheKey implements passdb.CacheKeyer: a lookup depends on nothing but
// the password query's bound values.
func (db *DB) CacheKey(req *auth.Request) (string, error) {
	if db.passQuery == nil {
		return "", errors.New("no password_query")
	}
	args, err := db.passQuery.args(req.Vars())
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, a := range args {
		b.WriteString(a.(string))
		b.WriteByte(0)
	}
	return b.String(), nil
}

// LookupPassdb runs password_query: its columns become fields (the
// stored password among them); NULL columns are absent.
func (db *DB) LookupPassdb(ctx context.Context, req *auth.Request) (auth.Result, error) {
	if db.passQuery == nil {
		return auth.Result{}, auth.Internal("passdb sql", errors.New("password_query is not set"))
	}
	return db.lookup(ctx, "passdb sql", db.passQuery, req)
}

// LookupUserdb runs user_query.
func (db *DB) LookupUserdb(ctx context.Context, req *auth.Request) (auth.Result, error) {
	if db.userQuery == nil {
		return auth.Result{}, auth.Internal("userdb sql", errors.New("user_query is not set"))
	}
	return db.lookup(ctx, "userdb sql", db.userQuery, req)
}

func (db *DB) lookup(ctx context.Context, op string, q *query, req *auth.Request) (auth.Result, error) {
	args, err := q.args(req.Vars())
	if err != nil {
		return auth.Result{}, auth.Internal(op, err)
	}
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	db.mu.Lock()
	start := db.good
	db.mu.Unlock()
	var lastErr error
	for i := 0; i < len(db.pools); i++ {
		idx := (start + i) % len(db.pools)
		res, err := queryOne(ctx, db.pools[idx], q.text, args)
		if err == nil {
			db.mu.Lock()
			db.good = idx
			db.mu.Unlock()
			return res, nil
		}
		lastErr = classify(op, err)
		if auth.KindOf(lastErr) == auth.KindInternal || ctx.Err() != nil {
			break // a broken query fails on every host alike
		}
	}
	return auth.Result{}, lastErr
}

// queryOne runs the query and insists on at most one row.
func queryOne(ctx context.Context, p *gosql.DB, text string, args []any) (auth.Result, error) {
	rows, err := p.QueryContext(ctx, text, args...)
	if err != nil {
		return auth.Result{}, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return auth.Result{}, err
	}
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return auth.Result{}, err
		}
		return auth.Result{Status: auth.StatusUserUnknown}, nil
	}
	vals := make([]gosql.NullString, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := rows.Scan(ptrs...); err != nil {
		return auth.Result{}, errInternal{err}
	}
	if rows.Next() {
		return auth.Result{}, errInternal{errors.New("query returned more than one row")}
	}
	if err := rows.Err(); err != nil {
		return auth.Result{}, err
	}
	f := auth.Fields{}
	for i, c := range cols {
		if vals[i].Valid {
			f[c] = vals[i].String
		}
	}
	res := auth.Result{Status: auth.StatusOK, Fields: f}
	switch {
	case f["user"] != "":
		res.User = f["user"]
	case f["username"] != "":
		res.User = f["username"]
		if d := f["domain"]; d != "" {
			res.User += "@" + d
		}
	}
	delete(f, "user")
	return res, nil
}

// errInternal marks a failure of our configuration (query shape).
type errInternal struct{ err error }

func (e errInternal) Error() string { return e.err.Error() }
func (e errInternal) Unwrap() error { return e.err }

// classify: SQL errors that a retry cannot fix (bad query, missing table,
// wrong credentials) are internal; connection trouble and timeouts are
// temporary.
func classify(op string, err error) error {
	var ie errInternal
	if errors.As(err, &ie) {
		return auth.Internal(op, err)
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case 1040, 1053, 1205, 1213, 1226, 2002, 2003, 2006, 2013:
			// too many connections, shutdown, lock wait, deadlock,
			// resource limits, connection lost
			return auth.Temporary(op, err)
		}
		return auth.Internal(op, err) // syntax, unknown column/table, access denied
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return auth.Temporary(op, err)
	}
	return auth.Temporary(op, err)
}
