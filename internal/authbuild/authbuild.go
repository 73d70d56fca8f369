// SPDX-License-Identifier: Apache-2.0

// Package authbuild turns the configuration's auth, passdb and userdb
// sections into running chains, with the explicit table of drivers (static,
// ldap, sql). The binary and the integration tests build them the same way.
package authbuild

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"

	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/db/ldap"
	"github.com/maildirector/maildirector/db/sql"
	"github.com/maildirector/maildirector/db/static"
	"github.com/maildirector/maildirector/passdb"
	"github.com/maildirector/maildirector/userdb"
)

// DBs are the passdb and userdb chains. LDAP and SQL databases configured
// with the same file (and inline settings) share one instance, and so one
// connection pool, as Dovecot's passdb and userdb do.
type DBs struct {
	Passdb *passdb.Chain
	Userdb *userdb.Chain
	// Cache is the auth cache, nil when auth.cache.size is 0.
	Cache *passdb.Cache

	log     *slog.Logger
	shared  map[string]any
	closers []func()
}

// Build constructs the chains. It reads .conf.ext files but opens no
// connection: pools connect on first use.
func Build(cfg *config.Config, log *slog.Logger) (*DBs, error) {
	a := &DBs{log: log, shared: map[string]any{}}
	var errs []error
	a.Passdb = &passdb.Chain{
		DefaultRealm:    cfg.Auth.DefaultRealm,
		UsernameFormat:  cfg.Auth.UsernameFormat,
		MasterSeparator: cfg.Auth.MasterUserSeparator,
		UsernameChars:   passdb.DefaultUsernameChars,
		HashLimit:       passdb.NewHashLimit(maxPasswordChecks(cfg.Auth.MaxPasswordChecks)),
		Log:             log,
	}
	if cfg.Auth.UsernameChars != nil {
		a.Passdb.UsernameChars = *cfg.Auth.UsernameChars
	}
	if r := cfg.Auth.DefaultRealm; r != "" {
		// The realm is checked with the name it completes (Dovecot's
		// order): one with a character auth.username_chars forbids would
		// refuse every login without "@".
		chars := a.Passdb.UsernameChars
		if chars != "" && strings.ContainsFunc("@"+r, func(ch rune) bool { return !strings.ContainsRune(chars, ch) }) {
			errs = append(errs, fmt.Errorf("auth.default_realm %q has characters auth.username_chars does not allow: every name without @ would be refused", r))
		}
	}
	if cfg.Auth.Cache.Size > 0 {
		a.Cache = passdb.NewCache(int(cfg.Auth.Cache.Size), cfg.Auth.Cache.TTL, *cfg.Auth.Cache.NegativeTTL, nil)
	}
	for i, p := range cfg.Passdb {
		e, err := a.passdbEntry(i, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("passdb[%d] (%s): %w", i, p.Driver, err))
			continue
		}
		if e.Master {
			a.Passdb.Masters = append(a.Passdb.Masters, e)
		} else {
			a.Passdb.Entries = append(a.Passdb.Entries, e)
		}
	}
	if len(cfg.Passdb) > 0 && len(a.Passdb.Entries) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("passdb: every passdb is a master passdb; ordinary users could never log in"))
	}
	// One name per user: recipients and user lookups get the login's
	// default realm and username format.
	a.Userdb = &userdb.Chain{Username: a.Passdb.Username, Log: log}
	for i, u := range cfg.Userdb {
		e, err := a.userdbEntry(i, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("userdb[%d] (%s): %w", i, u.Driver, err))
			continue
		}
		a.Userdb.Entries = append(a.Userdb.Entries, e)
	}
	if err := errors.Join(errs...); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Close closes the databases' idle connections.
func (a *DBs) Close() {
	for _, c := range a.closers {
		c()
	}
}

// open returns the database for a driver section, sharing LDAP and SQL
// databases between passdb and userdb sections that name the same file.
func (a *DBs) open(driver, args string, settings map[string]string, passdbUse bool) (any, error) {
	if driver == "static" {
		db, err := static.New(args)
		if err != nil {
			return nil, err
		}
		if passdbUse {
			if err := db.CheckPassdb(); err != nil {
				return nil, err
			}
		}
		return db, nil
	}
	key := driver + "\x00" + args + "\x00" + flatten(settings)
	if db, ok := a.shared[key]; ok {
		return db, nil
	}
	kv := map[string]string{}
	if args != "" {
		ce, err := config.ReadConfExt(args)
		if err != nil {
			return nil, err
		}
		kv = ce.Values
	}
	for k, v := range settings {
		kv[k] = v
	}
	var db any
	switch driver {
	case "ldap":
		s, err := ldap.ParseSettings(kv)
		if err != nil {
			return nil, err
		}
		for _, ig := range s.Ignored {
			a.log.Info("ldap: setting accepted but ignored", "file", args, "setting", ig)
		}
		l, err := ldap.New(s)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, l.Close)
		db = l
	case "sql":
		s, err := sql.ParseSettings(kv)
		if err != nil {
			return nil, err
		}
		for _, ig := range s.Ignored {
			a.log.Info("sql: setting accepted but ignored", "file", args, "setting", ig)
		}
		q, err := sql.New(s)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, q.Close)
		db = q
	default:
		return nil, fmt.Errorf("unknown driver %q", driver)
	}
	a.shared[key] = db
	return db, nil
}

func flatten(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + m[k] + "\x00")
	}
	return b.String()
}

func (a *DBs) passdbEntry(i int, p config.Passdb) (passdb.Entry, error) {
	raw, err := a.open(p.Driver, p.Args, p.Settings, true)
	if err != nil {
		return passdb.Entry{}, err
	}
	db, ok := raw.(passdb.DB)
	if !ok {
		return passdb.Entry{}, errors.New("this driver is not a passdb")
	}
	name := p.Name
	if name == "" {
		name = fmt.Sprintf("%s#%d", p.Driver, i)
	}
	e := passdb.NewEntry(name, db)
	e.Driver = p.Driver
	var errs []error
	if e.Skip, err = passdb.ParseSkip(p.Skip); err != nil {
		errs = append(errs, err)
	}
	for _, r := range []struct {
		val string
		dst *passdb.Rule
	}{{p.ResultSuccess, &e.OnSuccess}, {p.ResultFailure, &e.OnFailure}, {p.ResultInternalfail, &e.OnInternal}} {
		if r.val == "" {
			continue
		}
		if *r.dst, err = passdb.ParseRule(r.val); err != nil {
			errs = append(errs, err)
		}
	}
	if p.Pass {
		e.OnSuccess = passdb.Continue
	}
	e.Deny, e.Master = p.Deny, p.Master
	if p.Mechanisms != "" {
		e.Mechanisms = strings.Fields(strings.ToUpper(p.Mechanisms))
		for j, m := range e.Mechanisms {
			if m == "NONE" {
				e.Mechanisms[j] = "none"
			}
		}
	}
	e.UsernameFilter = strings.Fields(p.UsernameFilter)
	if e.DefaultFields, err = passdb.ParseFields(p.DefaultFields); err != nil {
		errs = append(errs, fmt.Errorf("default_fields: %w", err))
	}
	if e.OverrideFields, err = passdb.ParseFields(p.OverrideFields); err != nil {
		errs = append(errs, fmt.Errorf("override_fields: %w", err))
	}
	if _, cacheable := db.(passdb.CacheKeyer); cacheable {
		e.Cache = a.Cache
	}
	return e, errors.Join(errs...)
}

func (a *DBs) userdbEntry(i int, u config.Userdb) (userdb.Entry, error) {
	raw, err := a.open(u.Driver, u.Args, u.Settings, false)
	if err != nil {
		return userdb.Entry{}, err
	}
	db, ok := raw.(userdb.DB)
	if !ok {
		return userdb.Entry{}, errors.New("this driver is not a userdb")
	}
	name := u.Name
	if name == "" {
		name = fmt.Sprintf("%s#%d", u.Driver, i)
	}
	e := userdb.NewEntry(name, db)
	e.Driver = u.Driver
	var errs []error
	if e.Skip, err = userdb.ParseSkip(u.Skip); err != nil {
		errs = append(errs, err)
	}
	for _, r := range []struct {
		val string
		dst *passdb.Rule
	}{{u.ResultSuccess, &e.OnSuccess}, {u.ResultFailure, &e.OnFailure}, {u.ResultInternalfail, &e.OnInternal}} {
		if r.val == "" {
			continue
		}
		if *r.dst, err = passdb.ParseRule(r.val); err != nil {
			errs = append(errs, err)
		}
	}
	if e.DefaultFields, err = passdb.ParseFields(u.DefaultFields); err != nil {
		errs = append(errs, fmt.Errorf("default_fields: %w", err))
	}
	if e.OverrideFields, err = passdb.ParseFields(u.OverrideFields); err != nil {
		errs = append(errs, fmt.Errorf("override_fields: %w", err))
	}
	return e, errors.Join(errs...)
}

// maxPasswordChecks is auth.max_password_checks, 0 meaning one check per
// core: the checks are CPU-bound, so more at once only costs memory.
func maxPasswordChecks(n int) int {
	if n > 0 {
		return n
	}
	return runtime.GOMAXPROCS(0)
}
