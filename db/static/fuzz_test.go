// SPDX-License-Identifier: Apache-2.0

package static

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

// FuzzNew reads static args. Args it takes answer every user (never an
// error: the templates were checked when read) with exactly the fields
// they list, "user" becoming the result's user; and the passdb and
// userdb answers agree.
func FuzzNew(f *testing.F) {
	for _, s := range []string{
		"proxy=y nopassword=y",
		"password={PLAIN}s3cret proxy host=127.0.0.12 port=1143 destuser=%Ln master=admin pass=mpw nologin reason=closed user=%Lu",
		"password={SHA512-CRYPT}$6$salt$hash",
		"uid=vmail gid=vmail home=/srv/mail/%d/%n",
		"user=%{user}@%{service} nopassword",
		"=x", "k=%", "k=%{nosuch}", "k=%1.999u", "password",
		"host=%{rip} port=%{lport}\tproxy_maybe=y",
	} {
		f.Add(s, "Alice@Example.COM")
	}
	f.Fuzz(func(t *testing.T, args, user string) {
		db, err := New(args)
		if err != nil {
			return
		}
		db.CheckPassdb()
		req := &auth.Request{User: user, Service: "lmtp", Remote: netip.MustParseAddrPort("192.0.2.7:5555"),
			Local: netip.MustParseAddrPort("127.0.0.1:24")}
		res, err := db.LookupPassdb(context.Background(), req)
		if err != nil || res.Status != auth.StatusOK {
			t.Fatalf("args %q, user %q: %+v, %v", args, user, res, err)
		}
		keys := map[string]bool{}
		for _, kv := range strings.Fields(args) {
			k, _, _ := strings.Cut(kv, "=")
			keys[k] = true
		}
		if _, ok := res.Fields["user"]; ok {
			t.Fatalf("args %q: the user field was not taken as the user", args)
		}
		n := len(res.Fields)
		if keys["user"] {
			n++
		}
		if n != len(keys) {
			t.Fatalf("args %q gave fields %v", args, res.Fields)
		}
		for k := range res.Fields {
			if !keys[k] {
				t.Fatalf("args %q gave field %q", args, k)
			}
		}
		ures, err := db.LookupUserdb(context.Background(), req)
		if err != nil || ures.User != res.User || len(ures.Fields) != len(res.Fields) {
			t.Fatalf("args %q: passdb %+v, userdb %+v, %v", args, res, ures, err)
		}
	})
}
