// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

// seenDB records the names it is asked about and knows the users given.
type seenDB struct {
	fakeDB
	seen []string
}

func (s *seenDB) LookupPassdb(ctx context.Context, req *auth.Request) (auth.Result, error) {
	s.seen = append(s.seen, req.User)
	return s.fakeDB.LookupPassdb(ctx, req)
}

func seen(users ...string) *seenDB { return &seenDB{fakeDB: *db(users...)} }

// TestDefaultRealm: Dovecot's auth_request_fix_username order. A name
// without "@" gets "@realm" first; auth_username_chars is checked on the
// completed name; auth_username_format is applied last; only then does a
// database see the name, and the answer carries it (the one the director
// hashes and the logs show), on success and failure alike.
func TestDefaultRealm(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name, format, login string
		want                string // the name the database sees and the result carries
		status              auth.Status
	}{
		{"no @: realm appended", "", "user0042", "user0042@example.org", auth.StatusOK},
		{"@ given: unchanged", "", "user0042@other.org", "user0042@other.org", auth.StatusUserUnknown},
		{"format after realm", "", "User0042", "user0042@example.org", auth.StatusOK},
		{"format sees the realm (%Ud)", "%n@%Ud", "user0042", "user0042@EXAMPLE.ORG", auth.StatusUserUnknown},
		{"format drops it again (%n)", "%n", "user0042", "user0042", auth.StatusUserUnknown},
		{"ASCII-only %L", "", "ÄRGER", "Ärger@example.org", auth.StatusOK},
		{"empty domain is a domain", "", "user0042@", "user0042@", auth.StatusUserUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := seen("user0042@example.org", "pw", "Ärger@example.org", "pw")
			c := &Chain{Entries: []Entry{entry(d)}, DefaultRealm: "example.org", UsernameFormat: tt.format, UsernameChars: ""}
			res, err := c.Verify(ctx, &auth.Request{User: tt.login, Password: "pw"})
			if err != nil || res.Status != tt.status || res.User != tt.want {
				t.Fatalf("Verify(%q) = %v %q %v; want %v %q", tt.login, res.Status, res.User, err, tt.status, tt.want)
			}
			if len(d.seen) != 1 || d.seen[0] != tt.want {
				t.Fatalf("the database saw %q, want [%q]", d.seen, tt.want)
			}
			if got := c.CanonicalUser(&auth.Request{User: tt.login}); got != tt.want {
				t.Errorf("CanonicalUser(%q) = %q, want %q", tt.login, got, tt.want)
			}
			// LMTP and the lookup tools take the same way.
			res, err = c.Lookup(ctx, &auth.Request{User: tt.login, NoPassword: true})
			if err != nil || res.User != tt.want {
				t.Errorf("Lookup(%q) = %q %v, want %q", tt.login, res.User, err, tt.want)
			}
		})
	}
}

// TestDefaultRealmAndUsernameChars: the characters are checked on the
// completed name, before the format (Dovecot's order): a realm with a
// character auth.username_chars lacks refuses every name without "@"; a
// format adding one does not.
func TestDefaultRealmAndUsernameChars(t *testing.T) {
	ctx := context.Background()
	d := seen("user0042@example.org", "pw", "user0042@ex_ample.org+", "pw")
	c := &Chain{Entries: []Entry{entry(d)}, DefaultRealm: "ex_ample.org", UsernameChars: "abcdefghijklmnopqrstuvwxyz0123456789.@"}
	if res, err := c.Verify(ctx, &auth.Request{User: "user0042", Password: "pw"}); err != nil || res.Status != auth.StatusUserUnknown || len(d.seen) != 0 {
		t.Fatalf("realm with a forbidden character: %v %v, database saw %q", res.Status, err, d.seen)
	}
	c.DefaultRealm, c.UsernameFormat = "example.org", "%u+"
	d.seen = nil
	if res, err := c.Verify(ctx, &auth.Request{User: "user0042@ex_ample.org", Password: "pw"}); err != nil || res.Status != auth.StatusUserUnknown || len(d.seen) != 0 {
		t.Fatalf("forbidden character in the login: %v %v, database saw %q", res.Status, err, d.seen)
	}
	if res, err := c.Verify(ctx, &auth.Request{User: "user0042", Password: "pw"}); err != nil || len(d.seen) != 1 || d.seen[0] != "user0042@example.org+" {
		t.Fatalf("format output is not checked: %v %v, database saw %q", res.Status, err, d.seen)
	}
}

// TestDefaultRealmMasterLogins: in "user*master" and with a SASL
// authorization identity, both names are completed, as Dovecot's
// auth_request_set_username and auth_request_set_login_username each run
// auth_request_fix_username: the user logs in as user@realm, the master
// authenticates as master@realm.
func TestDefaultRealmMasterLogins(t *testing.T) {
	ctx := context.Background()
	users := seen("user0042@example.org", "userpw")
	masters := seen("admin@example.org", "adminpw", "admin@masters.example", "adminpw")
	c := &Chain{Entries: []Entry{entry(users)}, Masters: []Entry{entry(masters, rules(Continue, Continue, Continue))},
		MasterSeparator: "*", DefaultRealm: "example.org"}
	for _, tt := range []struct {
		req          auth.Request
		user, master string
	}{
		{auth.Request{User: "User0042*admin", Password: "adminpw"}, "user0042@example.org", "admin@example.org"},
		{auth.Request{User: "user0042*admin@masters.example", Password: "adminpw"}, "user0042@example.org", "admin@masters.example"},
		{auth.Request{User: "admin", AuthzID: "user0042", Password: "adminpw"}, "user0042@example.org", "admin@example.org"},
		{auth.Request{User: "user0042@example.org*admin", Password: "adminpw"}, "user0042@example.org", "admin@example.org"},
	} {
		users.seen, masters.seen = nil, nil
		res, err := c.Verify(ctx, &tt.req)
		if err != nil || res.Status != auth.StatusOK || res.User != tt.user || res.Master != tt.master {
			t.Errorf("%+v: %v %q master %q %v; want %q master %q", tt.req, res.Status, res.User, res.Master, err, tt.user, tt.master)
			continue
		}
		if len(masters.seen) != 1 || masters.seen[0] != tt.master || len(users.seen) != 1 || users.seen[0] != tt.user {
			t.Errorf("%+v: master passdb saw %q, user passdb %q", tt.req, masters.seen, users.seen)
		}
		if got := c.CanonicalUser(&tt.req); got != tt.user {
			t.Errorf("CanonicalUser(%+v) = %q, want %q", tt.req, got, tt.user)
		}
	}
	// A wrong master password: the answer still names the user, not the
	// master, and with the realm.
	res, err := c.Verify(ctx, &auth.Request{User: "user0042*admin", Password: "wrong"})
	if err != nil || res.Status == auth.StatusOK || res.User != "user0042@example.org" {
		t.Errorf("wrong master password: %v %q %v", res.Status, res.User, err)
	}
}
