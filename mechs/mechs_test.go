// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"errors"
	"testing"
)

func TestPlain(t *testing.T) {
	ex := Plain.Start()
	ch, done, err := ex.Next(nil)
	if err != nil || done || len(ch) != 0 {
		t.Fatalf("no initial response: %q %v %v", ch, done, err)
	}
	_, done, err = ex.Next([]byte("admin\x00alice\x00secret"))
	if err != nil || !done {
		t.Fatalf("got %v %v", done, err)
	}
	if c := ex.Credentials(); c != (Credentials{AuthzID: "admin", User: "alice", Password: "secret"}) {
		t.Fatalf("credentials %+v", c)
	}
	for _, bad := range []string{"", "alice", "a\x00b", "a\x00b\x00c\x00d"} {
		if _, _, err := Plain.Start().Next([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("PLAIN %q: got %v", bad, err)
		}
	}
}

func TestLogin(t *testing.T) {
	ex := Login.Start()
	ch, _, _ := ex.Next(nil)
	if string(ch) != "Username:" {
		t.Fatalf("first challenge %q", ch)
	}
	ch, _, _ = ex.Next([]byte("bob"))
	if string(ch) != "Password:" {
		t.Fatalf("second challenge %q", ch)
	}
	_, done, err := ex.Next([]byte("pw"))
	if !done || err != nil || ex.Credentials().User != "bob" || ex.Credentials().Password != "pw" {
		t.Fatalf("got %v %v %+v", done, err, ex.Credentials())
	}
	// With an initial response (SASL-IR) the username comes first.
	ex = Login.Start()
	ch, _, _ = ex.Next([]byte("carol"))
	if string(ch) != "Password:" || ex.(*login).creds.User != "carol" {
		t.Fatalf("initial response: %q", ch)
	}
}

func FuzzPlain(f *testing.F) {
	f.Add([]byte("\x00alice\x00secret"))
	f.Add([]byte("a\x00b\x00c"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		ex := Plain.Start()
		_, done, err := ex.Next(in)
		if err == nil && done {
			c := ex.Credentials()
			if len(c.User)+len(c.AuthzID)+len(c.Password)+2 != len(in) {
				t.Fatalf("credentials lost bytes: %+v from %q", c, in)
			}
		}
	})
}

func FuzzLogin(f *testing.F) {
	f.Add([]byte("user"), []byte("pass"))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		ex := Login.Start()
		ex.Next(a)
		ex.Next(b)
		ex.Next(b)
		ex.Next(nil)
	})
}
