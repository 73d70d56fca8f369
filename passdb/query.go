// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/password"
)

// query asks one entry about req: a lookup, and when check is set a
// password check too (by the stored password, or by the database itself
// for auth_bind). Answers come from the entry's cache when it has them.
// keep leaves the stored password in the fields, tagged with the entry's
// default scheme (for SASL mechanisms that check it themselves).
func query(ctx context.Context, log *slog.Logger, lim *HashLimit, e *Entry, req *auth.Request, check, keep bool) (auth.Result, error) {
	var (
		res auth.Result
		err error
	)
	if b, ok := e.DB.(Binder); ok && check && b.Binds() && !e.Deny {
		res, err = bindQuery(ctx, log, e, b, req)
	} else {
		res, err = lookupQuery(ctx, log, lim, e, req, check && !e.Deny)
	}
	if err != nil || res.Status != auth.StatusOK {
		return auth.Result{Status: res.Status}, err
	}
	if u, ok := res.Fields["user"]; ok {
		// Drivers move it themselves; the chain insists.
		res.User = u
	}
	f := auth.Fields{}
	if err := applyFields(f, e.DefaultFields, req, false); err != nil {
		return auth.Result{}, auth.Internal("passdb "+e.Name+": default_fields", err)
	}
	for k, v := range res.Fields {
		f[k] = v
	}
	if err := applyFields(f, e.OverrideFields, req, false); err != nil {
		return auth.Result{}, auth.Internal("passdb "+e.Name+": override_fields", err)
	}
	delete(f, "user")
	if keep {
		if pw, ok := f["password"]; ok && pw != "" && !strings.HasPrefix(pw, "{") {
			f["password"] = "{" + e.defaultScheme() + "}" + pw
		}
	} else {
		// The stored password never leaves the passdb layer.
		delete(f, "password")
		delete(f, "nopassword")
	}
	res.Fields = f
	return res, nil
}

// lookupQuery looks the user up and, when check is set, compares the
// password with the stored one.
func lookupQuery(ctx context.Context, log *slog.Logger, lim *HashLimit, e *Entry, req *auth.Request, check bool) (auth.Result, error) {
	res, key, cached, err := cachedLookup(ctx, log, e, req)
	if err != nil || res.Status != auth.StatusOK || !check {
		return res, err
	}
	ok, err := checkPassword(ctx, lim, e, req, res)
	if err != nil {
		return auth.Result{}, err
	}
	if !ok && cached.verified {
		// The cached password was right last time; it may have changed
		// since. Ask the database before saying no (Dovecot does too);
		// if it cannot answer, the cached answer stands.
		fresh, ferr := e.DB.LookupPassdb(ctx, req)
		switch {
		case ferr != nil:
			log.Info("passdb: falling back to cached data", "passdb", e.Name, "user", req.User, "reason", ferr)
		case fresh.Status != auth.StatusOK:
			e.Cache.put(key, fresh)
			return fresh, nil
		default:
			e.Cache.put(key, fresh)
			res = fresh
			if ok, err = checkPassword(ctx, lim, e, req, res); err != nil {
				return auth.Result{}, err
			}
		}
	}
	if !ok {
		return auth.Result{Status: auth.StatusPasswordMismatch}, nil
	}
	if key != "" {
		e.Cache.markVerified(key)
	}
	return res, nil
}

// checkPassword compares req.Password with the stored password in res,
// within lim.
func checkPassword(ctx context.Context, lim *HashLimit, e *Entry, req *auth.Request, res auth.Result) (bool, error) {
	if res.Fields.Has("nopassword") {
		return true, nil
	}
	stored := res.Fields["password"]
	if stored == "" || req.Password == "" {
		// No stored password and no nopassword: nobody gets in. An empty
		// password is never right.
		return false, nil
	}
	h, err := password.Parse(stored, password.Params{User: req.User, DefaultScheme: e.defaultScheme()})
	if err != nil {
		return false, auth.Internal("passdb "+e.Name+": stored password", err)
	}
	if h.Costly() {
		release, err := lim.acquire(ctx)
		if err != nil {
			return false, err
		}
		defer release()
	}
	ok, err := h.Verify(req.Password)
	if err != nil {
		return false, auth.Internal("passdb "+e.Name+": stored password", err)
	}
	return ok, nil
}

// cachedLookup returns the entry's lookup answer, from the cache when it
// is fresh, from the database otherwise; when the database fails, a stale
// cache entry still answers. key is "" when the entry is not cached.
func cachedLookup(ctx context.Context, log *slog.Logger, e *Entry, req *auth.Request) (res auth.Result, key string, it cacheItem, err error) {
	ck, ok := e.DB.(CacheKeyer)
	if e.Cache == nil || !ok {
		res, err = e.DB.LookupPassdb(ctx, req)
		return res, "", cacheItem{}, err
	}
	k, kerr := ck.CacheKey(req)
	if kerr != nil {
		res, err = e.DB.LookupPassdb(ctx, req)
		return res, "", cacheItem{}, err
	}
	key = e.Name + "\x00" + k
	it, fresh, found := e.Cache.get(key)
	if found && fresh && it.bindHash == nil {
		return it.res, key, it, nil
	}
	res, err = e.DB.LookupPassdb(ctx, req)
	if err != nil {
		if found && it.bindHash == nil {
			log.Info("passdb: falling back to expired data from cache", "passdb", e.Name, "user", req.User, "reason", err)
			return it.res, key, it, nil
		}
		return res, key, cacheItem{}, err
	}
	if res.Status == auth.StatusOK || res.Status == auth.StatusUserUnknown {
		e.Cache.put(key, res)
	}
	return res, key, cacheItem{}, nil
}

// bindQuery lets the database check the password (auth_bind), using the
// cache's record of the last password that worked when it is fresh, or
// when the directory cannot answer.
func bindQuery(ctx context.Context, log *slog.Logger, e *Entry, b Binder, req *auth.Request) (auth.Result, error) {
	if req.Password == "" {
		return auth.Result{Status: auth.StatusPasswordMismatch}, nil
	}
	var key string
	var it cacheItem
	var found, fresh bool
	if ck, ok := e.DB.(CacheKeyer); ok && e.Cache != nil {
		if k, err := ck.CacheKey(req); err == nil {
			key = e.Name + "\x00" + k
			it, fresh, found = e.Cache.get(key)
			if found && fresh && it.bindMatches(req.Password) {
				return it.res, nil
			}
		}
	}
	res, err := b.VerifyPassdb(ctx, req)
	if err != nil {
		if found && it.bindMatches(req.Password) {
			log.Info("passdb: falling back to expired data from cache", "passdb", e.Name, "user", req.User, "reason", err)
			return it.res, nil
		}
		return auth.Result{}, err
	}
	if key != "" && res.Status == auth.StatusOK {
		e.Cache.putBind(key, res, req.Password)
	}
	return res, nil
}

// errNoPassdb is the chain's answer when no entry applies.
var errNoPassdb = errors.New("all password databases were skipped")
