// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
)

// fakeDB is a map-backed passdb with fault injection.
type fakeDB struct {
	mu    sync.Mutex
	users map[string]auth.Fields // user -> fields (with "password")
	err   error                  // when set, every lookup fails with it
	calls int
}

func (f *fakeDB) LookupPassdb(_ context.Context, req *auth.Request) (auth.Result, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.err != nil {
		return auth.Result{}, f.err
	}
	u, ok := f.users[req.User]
	if !ok {
		return auth.Result{Status: auth.StatusUserUnknown}, nil
	}
	return auth.Result{Status: auth.StatusOK, Fields: u.Clone()}, nil
}

func (f *fakeDB) CacheKey(req *auth.Request) (string, error) { return req.User, nil }

func (f *fakeDB) setErr(err error) { f.mu.Lock(); f.err = err; f.mu.Unlock() }

func db(users ...string) *fakeDB {
	f := &fakeDB{users: map[string]auth.Fields{}}
	for i := 0; i+1 < len(users); i += 2 {
		f.users[users[i]] = auth.Fields{"password": "{PLAIN}" + users[i+1]}
	}
	return f
}

var (
	temp     = auth.Temporary("db", errors.New("down"))
	internal = auth.Internal("db", errors.New("bad config"))
)

func broken(err error) *fakeDB { return &fakeDB{err: err} }

func chain(entries ...Entry) *Chain { return &Chain{Entries: entries} }

func entry(d DB, mods ...func(*Entry)) Entry {
	e := NewEntry("e", d)
	for _, m := range mods {
		m(&e)
	}
	return e
}

func rules(success, failure, internal Rule) func(*Entry) {
	return func(e *Entry) { e.OnSuccess, e.OnFailure, e.OnInternal = success, failure, internal }
}

func verify(t *testing.T, c *Chain, user, pass string) (auth.Result, error) {
	t.Helper()
	return c.Verify(context.Background(), &auth.Request{User: user, Password: pass, Service: "imap"})
}

func TestChainRules(t *testing.T) {
	type want struct {
		status auth.Status
		kind   auth.Kind
		err    bool
	}
	ok, mismatch, unknown := want{status: auth.StatusOK}, want{status: auth.StatusPasswordMismatch}, want{status: auth.StatusUserUnknown}
	tempFail, internalFail := want{err: true, kind: auth.KindTemporary}, want{err: true, kind: auth.KindInternal}
	tests := []struct {
		name string
		c    *Chain
		pass string
		want want
	}{
		{"first OK", chain(entry(db("alice", "pw")), entry(db())), "pw", ok},
		{"unknown then OK", chain(entry(db()), entry(db("alice", "pw"))), "pw", ok},
		{"mismatch then OK", chain(entry(db("alice", "other")), entry(db("alice", "pw"))), "pw", ok},
		{"mismatch everywhere", chain(entry(db("alice", "a")), entry(db("alice", "b"))), "pw", mismatch},
		{"last answer wins among failures", chain(entry(db("alice", "a")), entry(db())), "pw", unknown},
		{"temp then unknown is temporary", chain(entry(broken(temp)), entry(db())), "pw", tempFail},
		{"temp then OK is OK", chain(entry(broken(temp)), entry(db("alice", "pw"))), "pw", ok},
		{"internal then mismatch is internal", chain(entry(broken(internal)), entry(db("alice", "x"))), "pw", internalFail},
		{"only entry temporary", chain(entry(broken(temp))), "pw", tempFail},
		{"unclassified error is temporary", chain(entry(broken(errors.New("eh")))), "pw", tempFail},
		{"return-fail on failure stops", chain(entry(db(), rules(ReturnOK, ReturnFail, Continue)), entry(db("alice", "pw"))), "pw", unknown},
		{"return-fail on success fails", chain(entry(db("alice", "pw"), rules(ReturnFail, Continue, Continue))), "pw", mismatch},
		{"continue-ok then failure is OK", chain(entry(db("alice", "pw"), rules(ContinueOK, Continue, Continue)), entry(db())), "pw", ok},
		{"continue-ok then continue-fail fails", chain(entry(db("alice", "pw"), rules(ContinueOK, Continue, Continue)),
			entry(db("alice", "x"), rules(ReturnOK, ContinueFail, Continue))), "pw", mismatch},
		{"pass=yes needs the next entry too", chain(entry(db("alice", "pw"), rules(Continue, Continue, Continue)), entry(db())), "pw", unknown},
		{"pass=yes and next OK", chain(entry(db("alice", "pw"), rules(Continue, Continue, Continue)), entry(db("alice", "pw"))), "pw", ok},
		{"return keeps earlier success", chain(entry(db("alice", "pw"), rules(ContinueOK, Continue, Continue)),
			entry(db(), rules(ReturnOK, Return, Continue)), entry(db())), "pw", ok},
		{"internal with return-fail rule", chain(entry(broken(internal), rules(ReturnOK, Continue, ReturnFail)), entry(db("alice", "pw"))), "pw", internalFail},
		{"empty password never matches", chain(entry(db("alice", ""))), "", mismatch},
		{"skip=authenticated after success", chain(entry(db("alice", "pw"), rules(ContinueOK, Continue, Continue)),
			entry(broken(temp), func(e *Entry) { e.Skip = SkipAuthenticated })), "pw", ok},
		{"skip=unauthenticated before success", chain(entry(broken(temp), func(e *Entry) { e.Skip = SkipUnauthenticated }),
			entry(db("alice", "pw"))), "pw", ok},
		{"every entry skipped is internal", chain(entry(db("alice", "pw"), func(e *Entry) { e.UsernameFilter = []string{"*@example.org"} })), "pw", internalFail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := verify(t, tt.c, "alice", tt.pass)
			if tt.want.err {
				if err == nil || auth.KindOf(err) != tt.want.kind {
					t.Fatalf("got %v, %v; want a %v error", res.Status, err, tt.want.kind)
				}
				return
			}
			if err != nil || res.Status != tt.want.status {
				t.Fatalf("got %v, %v; want %v", res.Status, err, tt.want.status)
			}
		})
	}
}

func TestDeny(t *testing.T) {
	deny := func(d DB) Entry { return entry(d, func(e *Entry) { e.Deny = true }) }
	denied := &fakeDB{users: map[string]auth.Fields{"alice": {"nopassword": ""}}}
	res, err := verify(t, chain(deny(denied), entry(db("alice", "pw", "bob", "pw"))), "alice", "pw")
	if err != nil || res.Status != auth.StatusUserDisabled {
		t.Fatalf("denied user: %v %v", res.Status, err)
	}
	res, err = verify(t, chain(deny(denied), entry(db("alice", "pw", "bob", "pw"))), "bob", "pw")
	if err != nil || res.Status != auth.StatusOK {
		t.Fatalf("user not on the deny list: %v %v", res.Status, err)
	}
	_, err = verify(t, chain(deny(broken(temp)), entry(db("bob", "pw"))), "bob", "pw")
	if err == nil {
		t.Fatal("a deny passdb that is down let the user in")
	}
}

func TestFieldsAndUser(t *testing.T) {
	d := &fakeDB{users: map[string]auth.Fields{"alice": {"password": "{PLAIN}pw", "user": "Alice.Real", "host": "10.0.0.1", "proxy": "y"}}}
	e := entry(d, func(e *Entry) {
		e.DefaultFields = map[string]string{"host": "default", "port": "1143"}
		e.OverrideFields = map[string]string{"proxy": "", "destuser": "%u"}
	})
	res, err := verify(t, chain(e), "ALICE", "pw")
	if err != nil || res.Status != auth.StatusOK {
		t.Fatal(res, err)
	}
	if res.User != "Alice.Real" {
		t.Errorf("user %q", res.User)
	}
	want := auth.Fields{"host": "10.0.0.1", "port": "1143", "proxy": "", "destuser": "alice"}
	for k, v := range want {
		if res.Fields[k] != v {
			t.Errorf("%s = %q, want %q", k, res.Fields[k], v)
		}
	}
	if _, leaked := res.Fields["password"]; leaked {
		t.Error("the stored password left the passdb layer")
	}
}

func TestUsernameFormatAndChars(t *testing.T) {
	c := chain(entry(db("alice@example.com", "pw")))
	c.UsernameChars = DefaultUsernameChars
	if res, _ := verify(t, c, "Alice@Example.COM", "pw"); res.Status != auth.StatusOK {
		t.Fatalf("%%Lu not applied: %v", res.Status)
	}
	for _, evil := range []string{"*)(uid=*", "' OR 1=1 -- ", "a\x00b"} {
		if res, err := verify(t, c, evil, "pw"); err != nil || res.Status != auth.StatusUserUnknown {
			t.Errorf("%q: %v %v", evil, res.Status, err)
		}
	}
}

func TestMasterLogins(t *testing.T) {
	users := db("alice", "alicepw")
	masters := db("admin", "adminpw")
	c := &Chain{Entries: []Entry{entry(users)}, Masters: []Entry{entry(masters, rules(Continue, Continue, Continue))}, MasterSeparator: "*"}
	ctx := context.Background()
	res, err := c.Verify(ctx, &auth.Request{User: "alice*admin", Password: "adminpw"})
	if err != nil || res.Status != auth.StatusOK || res.User != "alice" || res.Master != "admin" {
		t.Fatalf("user*master: %+v %v", res, err)
	}
	res, _ = c.Verify(ctx, &auth.Request{User: "admin", AuthzID: "alice", Password: "adminpw"})
	if res.Status != auth.StatusOK || res.User != "alice" || res.Master != "admin" {
		t.Fatalf("authzid: %+v", res)
	}
	res, _ = c.Verify(ctx, &auth.Request{User: "admin", AuthzID: "alice", Password: "alicepw"})
	if res.Status == auth.StatusOK {
		t.Fatal("the user's own password worked as the master's")
	}
	res, _ = c.Verify(ctx, &auth.Request{User: "admin", AuthzID: "nobody", Password: "adminpw"})
	if res.Status != auth.StatusUserUnknown {
		t.Fatalf("master login as an unknown user: %v", res.Status)
	}
	res, _ = chain(entry(users)).Verify(ctx, &auth.Request{User: "admin", AuthzID: "alice", Password: "adminpw"})
	if res.Status == auth.StatusOK {
		t.Fatal("master login without master passdbs succeeded")
	}
}

func TestLookupNeedsNoPassword(t *testing.T) {
	res, err := chain(entry(db("alice", "pw"))).Lookup(context.Background(), &auth.Request{User: "alice"})
	if err != nil || res.Status != auth.StatusOK {
		t.Fatal(res, err)
	}
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func TestCache(t *testing.T) {
	clk := &clock{t: time.Unix(1e9, 0)}
	d := db("alice", "pw")
	cache := NewCache(1<<20, time.Hour, time.Minute, clk.now)
	c := chain(entry(d, func(e *Entry) { e.Cache = cache }))
	for i := 0; i < 3; i++ {
		if res, err := verify(t, c, "alice", "pw"); err != nil || res.Status != auth.StatusOK {
			t.Fatal(res, err)
		}
	}
	if d.calls != 1 {
		t.Fatalf("database asked %d times, want 1", d.calls)
	}
	// A wrong password after a right one asks the database again (the
	// password may have changed), then answers from its data.
	if res, _ := verify(t, c, "alice", "new"); res.Status != auth.StatusPasswordMismatch || d.calls != 2 {
		t.Fatalf("mismatch: %v, %d calls", res.Status, d.calls)
	}
	// Negative answers are cached for the negative TTL.
	verify(t, c, "ghost", "x")
	verify(t, c, "ghost", "x")
	if d.calls != 3 {
		t.Fatalf("unknown user asked %d times", d.calls)
	}
	// Expired, and the database is down: the stale entry still answers.
	clk.t = clk.t.Add(2 * time.Hour)
	d.setErr(temp)
	if res, err := verify(t, c, "alice", "pw"); err != nil || res.Status != auth.StatusOK {
		t.Fatalf("stale fallback: %v %v", res.Status, err)
	}
	if res, err := verify(t, c, "alice", "wrong"); err != nil || res.Status != auth.StatusPasswordMismatch {
		t.Fatalf("stale entry with a wrong password: %v %v", res.Status, err)
	}
	if _, err := verify(t, c, "bob", "pw"); err == nil || auth.KindOf(err) != auth.KindTemporary {
		t.Fatalf("uncached user while down: %v", err)
	}
	if n := cache.Flush(); n == 0 || cache.Len() != 0 {
		t.Fatalf("flush: %d", n)
	}
	if _, err := verify(t, c, "alice", "pw"); err == nil {
		t.Fatal("after a flush the down database must show")
	}
}

func TestCacheEvicts(t *testing.T) {
	cache := NewCache(2000, time.Hour, time.Hour, nil)
	for i := 0; i < 100; i++ {
		cache.put(string(rune('a'+i%26))+string(rune('0'+i/26)), auth.Result{Status: auth.StatusUserUnknown})
	}
	if cache.Len() >= 100 || cache.size > 2000 {
		t.Fatalf("cache holds %d entries, %d bytes", cache.Len(), cache.size)
	}
}

func TestConcurrentVerify(t *testing.T) {
	c := chain(entry(db("alice", "pw"), func(e *Entry) { e.Cache = NewCache(1<<20, time.Hour, time.Hour, nil) }))
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 200; j++ {
				if res, _ := c.Verify(context.Background(), &auth.Request{User: "alice", Password: "pw"}); res.Status != auth.StatusOK {
					t.Error("concurrent verify failed")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestCredentials(t *testing.T) {
	d := &fakeDB{users: map[string]auth.Fields{
		"alice": {"password": "{CRAM-MD5}abc", "host": "h"},
		"bob":   {"password": "bare"},
		"carol": {"nopassword": ""},
	}}
	c := chain(entry(d, func(e *Entry) { e.DefaultScheme = "SHA512-CRYPT" }))
	ctx := context.Background()
	res, stored, err := c.Credentials(ctx, &auth.Request{User: "alice"})
	if err != nil || res.Status != auth.StatusOK || stored != "{CRAM-MD5}abc" || res.Fields["host"] != "h" {
		t.Fatalf("alice: %+v %q %v", res, stored, err)
	}
	if _, leaked := res.Fields["password"]; leaked {
		t.Fatal("the stored password stayed in the fields")
	}
	if _, stored, _ := c.Credentials(ctx, &auth.Request{User: "bob"}); stored != "{SHA512-CRYPT}bare" {
		t.Fatalf("bob: default scheme not applied: %q", stored)
	}
	if _, stored, _ := c.Credentials(ctx, &auth.Request{User: "carol"}); stored != "" {
		t.Fatalf("carol (nopassword): %q", stored)
	}
	if res, _, _ := c.Credentials(ctx, &auth.Request{User: "dave"}); res.Status != auth.StatusUserUnknown {
		t.Fatalf("dave: %v", res.Status)
	}
}
