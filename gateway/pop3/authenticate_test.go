// SPDX-License-Identifier: Apache-2.0

package pop3

import "testing"

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	login := []string{anyXCLIENT, "USER bob", "PASS secret"}
	for _, tc := range []struct {
		name    string
		talk    func(c *client)
		backend []string // nil: the backend is never contacted
	}{
		{"PLAIN with initial response", func(c *client) {
			c.Do("AUTH PLAIN "+b64("\x00bob\x00secret"), fakeOK)
		}, login},
		{"PLAIN, lower case", func(c *client) {
			c.Do("auth plain "+b64("\x00bob\x00secret"), fakeOK)
		}, login},
		{"PLAIN without initial response", func(c *client) {
			c.Do("AUTH PLAIN", "+ ")
			c.Do(b64("\x00bob\x00secret"), fakeOK)
		}, login},
		{"PLAIN with authzid logs in as master", func(c *client) {
			c.Do("AUTH PLAIN "+b64("bob\x00admin\x00secret"), fakeOK)
		}, []string{anyXCLIENT, "AUTH PLAIN " + b64("bob\x00admin\x00secret")}},
		{"PLAIN with authzid equal to the user", func(c *client) {
			c.Do("AUTH PLAIN "+b64("bob\x00bob\x00secret"), fakeOK)
		}, login},
		// A password USER/PASS cannot carry goes as AUTH PLAIN.
		{"PLAIN with CRLF in the password", func(c *client) {
			c.Do("AUTH PLAIN "+b64("\x00bob\x00se\r\nQUIT"), fakeOK)
		}, []string{anyXCLIENT, "AUTH PLAIN " + b64("\x00bob\x00se\r\nQUIT")}},
		{"PLAIN wrong password", func(c *client) {
			c.Do("AUTH PLAIN "+b64("\x00bob\x00wrong"), authFailed)
		}, []string{anyXCLIENT, "USER bob", "PASS wrong"}},
		{"PLAIN empty initial response", func(c *client) {
			c.Do("AUTH PLAIN =", authFailed)
		}, nil},
		{"PLAIN with a trailing space: no initial response", func(c *client) {
			c.Do("AUTH PLAIN ", "+ ")
			c.Do("*", "-ERR Authentication aborted by client.")
		}, nil},
		{"PLAIN cancelled", func(c *client) {
			c.Do("AUTH PLAIN", "+ ")
			c.Do("*", "-ERR Authentication aborted by client.")
		}, nil},
		{"PLAIN invalid base64 initial response", func(c *client) {
			c.Do("AUTH PLAIN AGJvYgBzZWNyZXQ", "-ERR [AUTH] Invalid base64 data in initial response")
		}, nil},
		{"PLAIN invalid base64 response", func(c *client) {
			c.Do("AUTH PLAIN", "+ ")
			c.Do("not base64!", "-ERR [AUTH] Invalid base64 in response")
		}, nil},
		{"PLAIN empty response", func(c *client) {
			c.Do("AUTH PLAIN", "+ ")
			c.Do("", authFailed)
		}, nil},
		{"PLAIN malformed message", func(c *client) {
			c.Do("AUTH PLAIN "+b64("bob secret"), authFailed)
		}, nil},
		{"LOGIN", func(c *client) {
			c.Do("AUTH LOGIN", "+ VXNlcm5hbWU6")
			c.Do(b64("bob"), "+ UGFzc3dvcmQ6")
			c.Do(b64("secret"), fakeOK)
		}, login},
		{"LOGIN with initial response", func(c *client) {
			c.Do("AUTH LOGIN "+b64("bob"), "+ UGFzc3dvcmQ6")
			c.Do(b64("secret"), fakeOK)
		}, login},
		{"LOGIN cancelled", func(c *client) {
			c.Do("AUTH LOGIN", "+ VXNlcm5hbWU6")
			c.Do(b64("bob"), "+ UGFzc3dvcmQ6")
			c.Do("*", "-ERR Authentication aborted by client.")
		}, nil},
		{"LOGIN NUL in user name", func(c *client) {
			c.Do("AUTH LOGIN", "+ VXNlcm5hbWU6")
			c.Do(b64("b\x00b"), authFailed)
		}, nil},
		{"unknown mechanism", func(c *client) {
			c.Do("AUTH CRAM-MD5", "-ERR [AUTH] Unsupported authentication mechanism.")
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			tc.talk(c)
			if tc.backend == nil {
				// The session goes on, and nothing reached a backend.
				c.Do("CAPA", capaLocal...)
				e.backend.expectUntouched(t)
				return
			}
			e.backend.expectReceived(t, tc.backend...)
		})
	}
}

// TestAuthenticateCountsFailures: failed AUTH logins count like PASS's,
// and cancelled exchanges count as invalid commands.
func TestAuthenticateCountsFailures(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("AUTH PLAIN "+b64("\x00bob\x00wrong"), authFailed)
	c.login("bob", "wrong", authFailed)
	c.Do("AUTH LOGIN", "+ VXNlcm5hbWU6")
	c.Do(b64("bob"), "+ UGFzc3dvcmQ6")
	c.Do(b64("wrong"), authFailed, "-ERR Too many authentication failures.")
	c.ExpectClosed()

	c = e.connect()
	c.Do("AUTH PLAIN", "+ ")
	c.Do("*", "-ERR Authentication aborted by client.")
	c.Do("AUTH PLAIN", "+ ")
	c.Do("*", "-ERR Authentication aborted by client.")
	c.Do("AUTH PLAIN", "+ ")
	c.Do("*", "-ERR Authentication aborted by client.", "-ERR Too many invalid bad commands.")
	c.ExpectClosed()
}
