// SPDX-License-Identifier: Apache-2.0

package static

import (
	"context"
	"testing"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/passdb/passdbtest"
)

func TestFields(t *testing.T) {
	db, err := New("password={PLAIN}s3cret proxy host=127.0.0.12 port=1143 destuser=%Ln master=admin pass=mpw nologin reason=closed user=%Lu")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CheckPassdb(); err != nil {
		t.Fatal(err)
	}
	res, err := db.LookupPassdb(context.Background(), &auth.Request{User: "Bob@Example.org"})
	if err != nil || res.Status != auth.StatusOK || res.User != "bob@example.org" {
		t.Fatalf("got %+v, %v", res, err)
	}
	want := auth.Fields{"password": "{PLAIN}s3cret", "proxy": "", "host": "127.0.0.12", "port": "1143", "destuser": "bob",
		"master": "admin", "pass": "mpw", "nologin": "", "reason": "closed"}
	for k, v := range want {
		if res.Fields[k] != v {
			t.Errorf("field %s = %q, want %q", k, res.Fields[k], v)
		}
	}
}

func TestUserdb(t *testing.T) {
	db, _ := New("uid=vmail gid=vmail home=/srv/mail/%d/%n")
	res, err := db.LookupUserdb(context.Background(), &auth.Request{User: "alice@example.com"})
	if err != nil || res.Fields["home"] != "/srv/mail/example.com/alice" {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestBadArgs(t *testing.T) {
	for _, args := range []string{"=x nopassword", "nopassword host=%q"} {
		if _, err := New(args); err == nil {
			t.Errorf("New(%q): no error", args)
		}
	}
	db, _ := New("proxy=y")
	if db.CheckPassdb() == nil {
		t.Error("a passdb without password or nopassword was accepted")
	}
}

func TestContract(t *testing.T) {
	db, err := New("password={PLAIN}s3cret proxy=y")
	if err != nil {
		t.Fatal(err)
	}
	passdbtest.Run(t, db, passdbtest.Fixture{User: "alice", Password: "s3cret"})
}
