// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"strconv"
	"testing"
)

// lit returns s as a non-synchronizing literal for a command line.
func lit(s string) string { return "{" + strconv.Itoa(len(s)) + "+}\r\n" + s }

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	login := plainLogin("bob", "secret")
	ir := b64("\x00bob\x00secret")
	for _, tc := range []struct {
		name    string
		talk    func(c *client)
		backend []string // nil: the backend is never contacted
	}{
		{"PLAIN with a quoted initial response", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN" "`+ir+`"`, fakeOK)
		}, []string{anyXCLIENT, login}},
		{"lower case command and mechanism", func(c *client) {
			c.Do(`authenticate "plain" "`+ir+`"`, fakeOK)
		}, []string{anyXCLIENT, login}},
		{"PLAIN with a literal initial response", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN" `+lit(ir), fakeOK)
		}, []string{anyXCLIENT, login}},
		{"PLAIN with a synchronizing literal initial response", func(c *client) {
			// No continuation: ManageSieve has none.
			c.Do(`AUTHENTICATE "PLAIN" {16}`+"\r\n"+ir, fakeOK)
		}, []string{anyXCLIENT, login}},
		{"literal mechanism name", func(c *client) {
			c.Do(`AUTHENTICATE `+lit("PLAIN")+` "`+ir+`"`, fakeOK)
		}, []string{anyXCLIENT, login}},
		{"PLAIN without initial response", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(`"`+ir+`"`, fakeOK)
		}, []string{anyXCLIENT, login}},
		{"PLAIN response as a literal", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(lit(ir), fakeOK)
		}, []string{anyXCLIENT, login}},
		{"PLAIN with authzid logs in as master", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN" "`+b64("bob\x00admin\x00secret")+`"`, fakeOK)
		}, []string{anyXCLIENT, masterLogin("bob", "admin", "secret")}},
		{"PLAIN with authzid equal to the user", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN" "`+b64("bob\x00bob\x00secret")+`"`, fakeOK)
		}, []string{anyXCLIENT, login}},
		{"PLAIN wrong password", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN" "`+b64("\x00bob\x00wrong")+`"`, authFailed)
		}, []string{anyXCLIENT, plainLogin("bob", "wrong")}},
		{"password with quotes and backslashes", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN" "`+b64("\x00bob\x00p\"w\\d")+`"`, fakeOK)
		}, []string{anyXCLIENT, plainLogin("bob", "p\"w\\d")}},
		{"PLAIN empty initial response", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN" ""`, authFailed)
		}, nil},
		{"PLAIN aborted", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(`"*"`, `NO "Authentication aborted by client."`)
		}, nil},
		{"PLAIN aborted with a literal", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(lit("*"), `NO "Authentication aborted by client."`)
		}, nil},
		{"bare * is not a string", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(`*`, `NO "Invalid AUTHENTICATE client response."`)
		}, nil},
		{"empty response line", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(``, `NO "Received empty AUTHENTICATE client response line."`)
		}, nil},
		{"two strings in a response", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(`"`+ir+`" "x"`, `NO "Invalid AUTHENTICATE client response."`)
		}, nil},
		{"broken quoting in a response", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(`"`+ir, `NO "Invalid AUTHENTICATE client response."`)
		}, nil},
		{"PLAIN invalid base64 initial response", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN" "AGJvYgBzZWNyZXQ"`, `NO "Invalid base64 data in initial response"`)
		}, nil},
		{"PLAIN invalid base64 response", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(`"not base64!"`, `NO "Invalid base64 in response"`)
		}, nil},
		{"PLAIN empty response", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN"`, `""`)
			c.Do(`""`, authFailed)
		}, nil},
		{"PLAIN malformed message", func(c *client) {
			c.Do(`AUTHENTICATE "PLAIN" "`+b64("bob secret")+`"`, authFailed)
		}, nil},
		{"LOGIN", func(c *client) {
			c.Do(`AUTHENTICATE "LOGIN"`, `"VXNlcm5hbWU6"`)
			c.Do(`"`+b64("bob")+`"`, `"UGFzc3dvcmQ6"`)
			c.Do(lit(b64("secret")), fakeOK)
		}, []string{anyXCLIENT, login}},
		{"LOGIN with initial response", func(c *client) {
			c.Do(`AUTHENTICATE "LOGIN" "`+b64("bob")+`"`, `"UGFzc3dvcmQ6"`)
			c.Do(`"`+b64("secret")+`"`, fakeOK)
		}, []string{anyXCLIENT, login}},
		{"LOGIN aborted", func(c *client) {
			c.Do(`AUTHENTICATE "LOGIN"`, `"VXNlcm5hbWU6"`)
			c.Do(`"`+b64("bob")+`"`, `"UGFzc3dvcmQ6"`)
			c.Do(`"*"`, `NO "Authentication aborted by client."`)
		}, nil},
		{"LOGIN NUL in the user name", func(c *client) {
			c.Do(`AUTHENTICATE "LOGIN"`, `"VXNlcm5hbWU6"`)
			c.Do(`"`+b64("b\x00b")+`"`, authFailed)
		}, nil},
		{"unknown mechanism", func(c *client) {
			c.Do(`AUTHENTICATE "CRAM-MD5"`, `NO "Unsupported authentication mechanism."`)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := start(t)
			c := e.connect()
			tc.talk(c)
			if tc.backend == nil {
				// The session goes on, and nothing reached a backend.
				c.Do("NOOP", noopOK)
				if n := e.backend.connections(); n != 0 {
					t.Fatalf("backend got %d connections, want 0", n)
				}
				return
			}
			e.backend.expectReceived(t, tc.backend...)
		})
	}
}

// TestAuthenticateCountsFailures: failed logins count towards
// max_auth_failures, and aborted exchanges as invalid commands.
func TestAuthenticateCountsFailures(t *testing.T) {
	t.Parallel()
	e := start(t)
	c := e.connect()
	c.Do(`AUTHENTICATE "PLAIN" "`+b64("\x00bob\x00wrong")+`"`, authFailed)
	c.Do("NOOP", noopOK)
	c.Do(`AUTHENTICATE "PLAIN" "`+b64("\x00bob\x00wrong")+`"`, authFailed)
	c.Do(`AUTHENTICATE "LOGIN"`, `"VXNlcm5hbWU6"`)
	c.Do(`"`+b64("bob")+`"`, `"UGFzc3dvcmQ6"`)
	c.Do(`"`+b64("wrong")+`"`, authFailed, tooManyFailures)
	c.ExpectClosed()

	c = e.connect()
	for range 2 {
		c.Do(`AUTHENTICATE "PLAIN"`, `""`)
		c.Do(`"*"`, `NO "Authentication aborted by client."`)
	}
	c.Do(`AUTHENTICATE "PLAIN"`, `""`)
	c.Do(`"*"`, tooManyInvalid)
	c.ExpectClosed()
}
