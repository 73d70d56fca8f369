// SPDX-License-Identifier: Apache-2.0

package userdb

import (
	"context"
	"errors"
	"testing"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/passdb"
)

type fake struct {
	users map[string]auth.Fields
	err   error
}

func (f fake) LookupUserdb(_ context.Context, req *auth.Request) (auth.Result, error) {
	if f.err != nil {
		return auth.Result{}, f.err
	}
	if u, ok := f.users[req.User]; ok {
		return auth.Result{Status: auth.StatusOK, Fields: u.Clone()}, nil
	}
	return auth.Result{Status: auth.StatusUserUnknown}, nil
}

func TestChain(t *testing.T) {
	temp := auth.Temporary("db", errors.New("down"))
	alice := fake{users: map[string]auth.Fields{"alice": {"home": "/h/alice"}}}
	none := fake{users: map[string]auth.Fields{}}
	down := fake{err: temp}
	tests := []struct {
		name    string
		dbs     []DB
		want    auth.Status
		wantErr bool
	}{
		{"found", []DB{alice}, auth.StatusOK, false},
		{"unknown then found", []DB{none, alice}, auth.StatusOK, false},
		{"unknown everywhere", []DB{none, none}, auth.StatusUserUnknown, false},
		{"down then unknown is temporary", []DB{down, none}, 0, true},
		{"down then found is found", []DB{down, alice}, auth.StatusOK, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &Chain{}
			for i, d := range tt.dbs {
				c.Entries = append(c.Entries, NewEntry(string(rune('a'+i)), d))
			}
			res, err := c.Lookup(context.Background(), &auth.Request{User: "alice"})
			if tt.wantErr {
				if err == nil || auth.KindOf(err) != auth.KindTemporary {
					t.Fatalf("got %v %v", res.Status, err)
				}
				return
			}
			if err != nil || res.Status != tt.want {
				t.Fatalf("got %v %v, want %v", res.Status, err, tt.want)
			}
		})
	}
}

func TestFieldsMerge(t *testing.T) {
	a := NewEntry("a", fake{users: map[string]auth.Fields{"alice": {"home": "/h", "uid": "1"}}})
	a.OnSuccess = passdb.ContinueOK
	b := NewEntry("b", fake{users: map[string]auth.Fields{"alice": {"uid": "2"}}})
	b.OverrideFields = map[string]string{"mail": "maildir:~/%n"}
	res, err := (&Chain{Entries: []Entry{a, b}}).Lookup(context.Background(), &auth.Request{User: "alice"})
	if err != nil || res.Fields["home"] != "/h" || res.Fields["uid"] != "2" || res.Fields["mail"] != "maildir:~/alice" {
		t.Fatalf("got %+v %v", res, err)
	}
}

// TestChainUsesTheLoginName: with the passdb chain's Username (as
// authbuild wires it), a recipient or user lookup without "@" gets
// auth.default_realm and auth.username_format, exactly as a login: one
// name per user, in the answer too.
func TestChainUsesTheLoginName(t *testing.T) {
	names := &passdb.Chain{DefaultRealm: "example.org", UsernameChars: passdb.DefaultUsernameChars}
	db := fake{users: map[string]auth.Fields{"user0042@example.org": {"home": "/h/42"}}}
	c := &Chain{Entries: []Entry{NewEntry("a", db)}, Username: names.Username}
	for login, want := range map[string]struct {
		status auth.Status
		user   string
	}{
		"user0042":             {auth.StatusOK, "user0042@example.org"},
		"USER0042":             {auth.StatusOK, "user0042@example.org"},
		"user0042@example.org": {auth.StatusOK, "user0042@example.org"},
		"user0042@other.org":   {auth.StatusUserUnknown, "user0042@other.org"},
		"bad name":             {auth.StatusUserUnknown, ""},
	} {
		res, err := c.Lookup(context.Background(), &auth.Request{User: login, NoPassword: true})
		if err != nil || res.Status != want.status || res.User != want.user {
			t.Errorf("Lookup(%q) = %v %q %v; want %v %q", login, res.Status, res.User, err, want.status, want.user)
		}
	}
}
