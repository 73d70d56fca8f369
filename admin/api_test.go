// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	tokenAlice = "alice-0123456789abcdef"
	tokenBare  = "bare-token-fedcba9876543210"
)

func startAPI(t *testing.T, ops Ops) *httptest.Server {
	t.Helper()
	tokens, err := ParseTokens([]byte("# admins\nalice " + tokenAlice + "\n\n  " + tokenBare + "  \n"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	(&API{Ops: ops, Log: discardLog(), OpTimeout: 2 * time.Second, now: func() time.Time { return testNow }}).Register(mux)
	srv := httptest.NewServer(tokens.Require(mux, discardLog()))
	t.Cleanup(srv.Close)
	return srv
}

// call makes a request with the token (none when ""), and returns the
// status and body.
func call(t *testing.T, srv *httptest.Server, token, method, path, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAPITokens(t *testing.T) {
	ops := newFakeOps("127.0.0.11", "127.0.0.12")
	srv := startAPI(t, ops)
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong-token-0123456789", "Basic " + tokenAlice, tokenAlice,
		"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:wrong-token-0123456789")), "Basic " + base64.StdEncoding.EncodeToString([]byte(tokenAlice)),
		"Bearer " + tokenAlice + "x", "Bearer " + tokenAlice[:len(tokenAlice)-1], "Bearer alice"} {
		for _, path := range []string{"/api/v1/status", "/api/v1/hosts", "/api/v1/hosts/127.0.0.11", "/api/v1/map", "/nonexistent"} {
			status, body := call(t, srv, auth, "GET", path, "")
			if status != http.StatusUnauthorized || body != `{"error":"unauthorized"}`+"\n" {
				t.Errorf("%q %s: %d %q, want 401 and nothing else", auth, path, status, body)
			}
			if strings.Contains(body, "127.0.0") {
				t.Errorf("%q %s: a host name in a refusal", auth, path)
			}
		}
		if status, _ := call(t, srv, auth, "POST", "/api/v1/hosts/127.0.0.11/down", ""); status != http.StatusUnauthorized {
			t.Errorf("%q: down answered %d", auth, status)
		}
	}
	if calls := ops.Calls(); len(calls) != 0 {
		t.Errorf("refused requests changed something: %q", calls)
	}
	// A browser sends the token as Basic's password (any user name).
	for _, auth := range []string{"Bearer " + tokenAlice, "bearer " + tokenBare, "BEARER  " + tokenAlice,
		"Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:"+tokenAlice)), "Basic " + base64.StdEncoding.EncodeToString([]byte(":"+tokenBare))} {
		if status, body := call(t, srv, auth, "GET", "/api/v1/hosts", ""); status != 200 || !strings.Contains(body, "127.0.0.12") {
			t.Errorf("%q: %d %s", auth, status, body)
		}
	}
	call(t, srv, "Bearer "+tokenAlice, "POST", "/api/v1/hosts/127.0.0.11/up", "")
	call(t, srv, "Bearer "+tokenBare, "POST", "/api/v1/hosts/127.0.0.12/up", "")
	calls := ops.Calls()
	if len(calls) != 2 || !strings.HasPrefix(calls[0], "up 127.0.0.11 by api:alice@127.0.0.1") || !strings.HasPrefix(calls[1], "up 127.0.0.12 by api:token-") {
		t.Errorf("calls %q: want who asked (the token's name, or a digest's prefix)", calls)
	}
	if strings.Contains(calls[1], tokenBare[:8]) {
		t.Errorf("a piece of the token in the records: %q", calls[1])
	}
}

func TestParseTokens(t *testing.T) {
	for _, bad := range []string{"", "# only a comment\n", "short\n", "a b c\n", "name short\n"} {
		if _, err := ParseTokens([]byte(bad)); err == nil {
			t.Errorf("ParseTokens(%q) accepted", bad)
		}
	}
	tk, err := ParseTokens([]byte("one " + tokenAlice + "\ntwo " + tokenBare + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	for tok, want := range map[string]string{tokenAlice: "one", tokenBare: "two", "": "", tokenAlice + " ": ""} {
		if name, _ := tk.check(tok); name != want {
			t.Errorf("check(%q) = %q, want %q", tok, name, want)
		}
	}
	path := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(path, []byte(tokenAlice+"\n"), 0o600)
	if _, err := LoadTokens(path); err != nil {
		t.Error(err)
	}
	if _, err := LoadTokens(path + ".missing"); err == nil {
		t.Error("a missing token file was accepted")
	}
}

func TestAPIOperations(t *testing.T) {
	ops := newFakeOps("127.0.0.11", "127.0.0.12", "127.0.0.13@other")
	ops.assign("user1@example.com", "127.0.0.12", testNow.Add(time.Minute))
	srv := startAPI(t, ops)
	auth := "Bearer " + tokenAlice
	for _, c := range []struct {
		method, path, body string
		status             int
		contains           string
	}{
		{"GET", "/api/v1/status", "", 200, `"name": "gw2"`},
		{"GET", "/api/v1/hosts/127.0.0.12", "", 200, `"users": 1`},
		{"GET", "/api/v1/hosts/127.0.0.11", "", 200, `"gw1": 2`},
		{"GET", "/api/v1/hosts/127.0.0.99", "", 404, "no such host"},
		{"GET", "/api/v1/hosts/bogus", "", 400, "not an IP address"},
		{"POST", "/api/v1/hosts", `{"ip": "127.0.0.14", "vhosts": 20}`, 200, `"ok": true`},
		{"POST", "/api/v1/hosts", `{"ip": "127.0.0.14", "tag": "x"}`, 409, "tag can't be changed"},
		{"POST", "/api/v1/hosts", `{"ip": "127.0.0.15", "vhosts": 1001}`, 400, "too large"},
		{"POST", "/api/v1/hosts", `{"ip": "127.0.0.15", "vhost": 1}`, 400, "unknown field"},
		{"POST", "/api/v1/hosts", `{"ip": "127.0.0.15", "vhosts": -1}`, 400, "negative"},
		{"POST", "/api/v1/hosts", `not json`, 400, "request body"},
		{"PUT", "/api/v1/hosts/127.0.0.11", `{"vhosts": 0}`, 200, `"ok": true`},
		{"PUT", "/api/v1/hosts/127.0.0.11", `{}`, 400, "vhosts"},
		{"PUT", "/api/v1/hosts/127.0.0.99", `{"vhosts": 1}`, 404, "no such host"},
		{"POST", "/api/v1/hosts/127.0.0.12/down", "", 200, `"ok": true`},
		{"POST", "/api/v1/hosts/127.0.0.12/up", "", 200, `"ok": true`},
		{"POST", "/api/v1/hosts/127.0.0.12/flush", "", 200, `"ok": true`},
		{"POST", "/api/v1/hosts/all/flush", "", 200, `"ok": true`},
		{"POST", "/api/v1/hosts/127.0.0.12/drain?kick_after=1m&timeout=10m", "", 200, `"ok": true`},
		{"POST", "/api/v1/hosts/127.0.0.12/drain?kick_after=soon", "", 400, "kick_after"},
		{"POST", "/api/v1/hosts/127.0.0.12/undrain", "", 200, `"ok": true`},
		{"GET", "/api/v1/users/User1@Example.com", "", 200, `"current": "127.0.0.12"`},
		{"GET", "/api/v1/users/nobody?tag=other", "", 200, `"hashed": "127.0.0.13"`},
		{"GET", "/api/v1/users/bad%25name", "", 400, "cannot hash"},
		{"POST", "/api/v1/users/user1@example.com/move", `{"host": "127.0.0.11"}`, 200, `"ok": true`},
		{"POST", "/api/v1/users/user1@example.com/move", `{"host": "127.0.0.99"}`, 404, "no such host"},
		{"POST", "/api/v1/users/user1@example.com/kick", "", 200, `"kicked": 1`},
		{"POST", "/api/v1/users/nobody/kick", "", 200, `"kicked": 0`},
		{"GET", "/api/v1/map", "", 200, `"user": "user1@example.com"`},
		{"GET", "/api/v1/map?host=127.0.0.12", "", 200, `[]`},
		{"DELETE", "/api/v1/hosts/127.0.0.14", "", 200, `"ok": true`},
		{"GET", "/api/v1/nothing", "", 404, ""},
		{"DELETE", "/api/v1/status", "", 405, ""},
	} {
		status, body := call(t, srv, auth, c.method, c.path, c.body)
		if status != c.status || !strings.Contains(body, c.contains) {
			t.Errorf("%s %s %s: %d %s, want %d with %q", c.method, c.path, c.body, status, body, c.status, c.contains)
		}
	}
	// The last backend cannot go.
	one := startAPI(t, newFakeOps("127.0.0.11"))
	if status, body := call(t, one, auth, "DELETE", "/api/v1/hosts/127.0.0.11", ""); status != 409 {
		t.Errorf("removing the last backend: %d %s", status, body)
	}
	// The store down: 503, nothing changed.
	ops.fail = io.ErrUnexpectedEOF
	if status, _ := call(t, srv, auth, "POST", "/api/v1/hosts/127.0.0.12/down", ""); status != 503 {
		t.Errorf("the store down: %d", status)
	}
	var hosts []HostStatus
	ops.fail = nil
	_, body := call(t, srv, auth, "GET", "/api/v1/hosts", "")
	if err := json.Unmarshal([]byte(body), &hosts); err != nil || len(hosts) != 3 {
		t.Errorf("hosts: %v %s", err, body)
	}
}
