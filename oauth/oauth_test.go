// SPDX-License-Identifier: Apache-2.0

package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/mechs"
)

func TestIntrospection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, _ := r.BasicAuth()
		if id != "gw" || secret != "s3" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		r.ParseForm()
		switch r.Form.Get("token") {
		case "good":
			w.Write([]byte(`{"active":true,"email":"alice@example.com","sub":"42"}`))
		case "expired":
			w.Write([]byte(`{"active":false}`))
		case "500":
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.Write([]byte(`{"active":false}`))
		}
	}))
	defer srv.Close()
	in := &Introspector{URL: srv.URL, ClientID: "gw", ClientSecret: "s3"}
	ctx := context.Background()
	if u, err := in.Validate(ctx, "good"); err != nil || u != "alice@example.com" {
		t.Fatalf("good: %q %v", u, err)
	}
	if _, err := in.Validate(ctx, "expired"); !errors.Is(err, mechs.ErrInvalidToken) {
		t.Fatalf("expired: %v", err)
	}
	if _, err := in.Validate(ctx, "500"); err == nil || auth.KindOf(err) != auth.KindTemporary {
		t.Fatalf("endpoint failing: %v", err)
	}
	in.ClientSecret = "wrong"
	if _, err := in.Validate(ctx, "good"); err == nil || auth.KindOf(err) != auth.KindInternal {
		t.Fatalf("our credentials wrong: %v", err)
	}
	in = &Introspector{URL: srv.URL + "/", ClientID: "gw", ClientSecret: "s3", UsernameAttribute: "sub"}
	if u, _ := in.Validate(ctx, "good"); u != "42" {
		t.Fatalf("username_attribute: %q", u)
	}
	srv.Close()
	if _, err := in.Validate(ctx, "good"); err == nil || auth.KindOf(err) != auth.KindTemporary {
		t.Fatalf("endpoint down: %v", err)
	}
}
