// SPDX-License-Identifier: Apache-2.0

package static

import (
	"context"
	"sync"
	"testing"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/passdb"
)

var _ passdb.DB = (*DB)(nil)

func TestProxyNopassword(t *testing.T) {
	db, err := New("proxy=y nopassword=y")
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Verify(context.Background(), &auth.Request{User: "alice", Password: "anything"})
	if err != nil || res.Status != auth.StatusOK || !res.Fields.Has("proxy") || res.Fields.Has("nopassword") {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestPasswordAndFields(t *testing.T) {
	db, err := New("password={PLAIN}s3cret proxy host=127.0.0.12 port=1143 destuser=%Ln master=admin pass=mpw nologin reason=closed")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := db.Verify(ctx, &auth.Request{User: "Bob@Example.org", Password: "s3cret"})
	if err != nil || res.Status != auth.StatusOK {
		t.Fatalf("right password: %+v, %v", res, err)
	}
	want := auth.Fields{"proxy": "", "host": "127.0.0.12", "port": "1143", "destuser": "bob",
		"master": "admin", "pass": "mpw", "nologin": "", "reason": "closed"}
	for k, v := range want {
		if res.Fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, res.Fields[k], v)
		}
	}
	res, err = db.Verify(ctx, &auth.Request{User: "bob", Password: "wrong"})
	if err != nil || res.Status != auth.StatusPasswordMismatch || len(res.Fields) != 0 {
		t.Fatalf("wrong password: %+v, %v", res, err)
	}
	res, err = db.Verify(ctx, &auth.Request{User: "bob", Password: ""})
	if err != nil || res.Status != auth.StatusPasswordMismatch {
		t.Fatalf("empty password: %+v, %v", res, err)
	}
	res, err = db.Verify(ctx, &auth.Request{User: "bob", NoPassword: true})
	if err != nil || res.Status != auth.StatusOK {
		t.Fatalf("lookup: %+v, %v", res, err)
	}
}

func TestUserField(t *testing.T) {
	db, err := New("nopassword user=%Lu")
	if err != nil {
		t.Fatal(err)
	}
	res, _ := db.Verify(context.Background(), &auth.Request{User: "ALICE"})
	if res.User != "alice" {
		t.Fatalf("user = %q", res.User)
	}
}

func TestBadArgs(t *testing.T) {
	for _, args := range []string{"proxy=y", "nopassword host=%q", "password={SSHA}abc", "=x nopassword"} {
		if _, err := New(args); err == nil {
			t.Errorf("New(%q): no error", args)
		}
	}
}

func TestConcurrent(t *testing.T) {
	db, _ := New("password=pw host=%{rip}")
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				if r, _ := db.Verify(context.Background(), &auth.Request{User: "u", Password: "pw"}); r.Status != auth.StatusOK {
					t.Error("concurrent verify failed")
					return
				}
			}
		}()
	}
	wg.Wait()
}
