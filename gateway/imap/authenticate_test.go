// SPDX-License-Identifier: Apache-2.0

package imap

import "testing"

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	login := `L LOGIN "bob" "secret"`
	for _, tc := range []struct {
		name    string
		talk    func(c *client)
		backend []string // nil: the backend is never contacted
	}{
		{"PLAIN with SASL-IR", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN "+b64("\x00bob\x00secret"), "a "+fakeOK)
		}, []string{anyID, login}},
		{"PLAIN, lower case", func(c *client) {
			c.Do("a authenticate plain "+b64("\x00bob\x00secret"), "a "+fakeOK)
		}, []string{anyID, login}},
		{"PLAIN IR as a quoted string", func(c *client) {
			c.Do(`a AUTHENTICATE PLAIN "`+b64("\x00bob\x00secret")+`"`, "a "+fakeOK)
		}, []string{anyID, login}},
		{"PLAIN without IR", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN", "+ ")
			c.Do(b64("\x00bob\x00secret"), "a "+fakeOK)
		}, []string{anyID, login}},
		{"PLAIN with authzid logs in as master", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN "+b64("bob\x00admin\x00secret"), "a "+fakeOK)
		}, []string{anyID, "L AUTHENTICATE PLAIN " + b64("bob\x00admin\x00secret")}},
		{"PLAIN with authzid equal to the user", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN "+b64("bob\x00bob\x00secret"), "a "+fakeOK)
		}, []string{anyID, login}},
		{"PLAIN wrong password", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN "+b64("\x00bob\x00wrong"), "a "+authFailed)
		}, []string{anyID, `L LOGIN "bob" "wrong"`}},
		{"PLAIN empty IR", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN =", "a "+authFailed)
		}, nil},
		{"PLAIN cancelled", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN", "+ ")
			c.Do("*", "a BAD Authentication aborted by client.")
		}, nil},
		{"PLAIN invalid base64 IR", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN AGJvYgBzZWNyZXQ", "a BAD Invalid base64 data in initial response")
		}, nil},
		{"PLAIN invalid base64 response", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN", "+ ")
			c.Do("not base64!", "a NO [ALERT] Invalid base64 in response")
		}, nil},
		{"PLAIN empty response", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN", "+ ")
			c.Do("", "a "+authFailed)
		}, nil},
		{"PLAIN malformed message", func(c *client) {
			c.Do("a AUTHENTICATE PLAIN "+b64("bob secret"), "a "+authFailed)
		}, nil},
		{"LOGIN", func(c *client) {
			c.Do("a AUTHENTICATE LOGIN", "+ VXNlcm5hbWU6")
			c.Do(b64("bob"), "+ UGFzc3dvcmQ6")
			c.Do(b64("secret"), "a "+fakeOK)
		}, []string{anyID, login}},
		{"LOGIN with IR", func(c *client) {
			c.Do("a AUTHENTICATE LOGIN "+b64("bob"), "+ UGFzc3dvcmQ6")
			c.Do(b64("secret"), "a "+fakeOK)
		}, []string{anyID, login}},
		{"LOGIN cancelled", func(c *client) {
			c.Do("a AUTHENTICATE LOGIN", "+ VXNlcm5hbWU6")
			c.Do(b64("bob"), "+ UGFzc3dvcmQ6")
			c.Do("*", "a BAD Authentication aborted by client.")
		}, nil},
		{"LOGIN NUL in user name", func(c *client) {
			c.Do("a AUTHENTICATE LOGIN", "+ VXNlcm5hbWU6")
			c.Do(b64("b\x00b"), "a "+authFailed)
		}, nil},
		{"unknown mechanism", func(c *client) {
			c.Do("a AUTHENTICATE CRAM-MD5", "a NO [ALERT] Unsupported authentication mechanism.")
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			tc.talk(c)
			if tc.backend == nil {
				// The session goes on, and nothing reached a backend.
				c.Do("z NOOP", "z OK NOOP completed.")
				if n := e.backend.connections(); n != 0 {
					t.Fatalf("backend got %d connections, want 0", n)
				}
				return
			}
			e.backend.expectReceived(t, tc.backend...)
		})
	}
}

// TestAuthenticateCountsFailures: failed AUTHENTICATE logins count like
// LOGIN's, and cancelled exchanges count as invalid commands.
func TestAuthenticateCountsFailures(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do("a1 AUTHENTICATE PLAIN "+b64("\x00bob\x00wrong"), "a1 "+authFailed)
	c.Do("a2 LOGIN bob wrong", "a2 "+authFailed)
	c.Do("a3 AUTHENTICATE LOGIN", "+ VXNlcm5hbWU6")
	c.Do(b64("bob"), "+ UGFzc3dvcmQ6")
	c.Do(b64("wrong"), "a3 "+authFailed, "* BYE Too many authentication failures.")
	c.ExpectClosed()

	c = e.connect()
	c.Do("b1 AUTHENTICATE PLAIN", "+ ")
	c.Do("*", "b1 BAD Authentication aborted by client.")
	c.Do("b2 AUTHENTICATE PLAIN", "+ ")
	c.Do("*", "b2 BAD Authentication aborted by client.")
	c.Do("b3 AUTHENTICATE PLAIN", "+ ")
	c.Do("*", "* BYE Too many invalid IMAP commands.")
	c.ExpectClosed()
}
