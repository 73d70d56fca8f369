// SPDX-License-Identifier: Apache-2.0

// Package passdbtest is the contract every passdb driver must pass, run
// by each driver's tests (static in unit tests, LDAP and SQL against real
// servers in integration/). Only tests import it.
package passdbtest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/passdb"
)

// Fixture describes what a driver's test database holds.
type Fixture struct {
	User, Password string // a user and its right password
	// Unknown is a user the database does not have; "" when every user
	// exists (static).
	Unknown string
	// Down makes the database unreachable and Up brings it back; nil when
	// the driver has no server.
	Down, Up func(t *testing.T)
}

// Run checks db against the contract: verdicts, the empty password,
// injection attempts, a server outage and concurrent use.
func Run(t *testing.T, db passdb.DB, f Fixture) {
	// username_chars is off, so that the driver itself meets the
	// injection attempts; the chain's own check would stop them earlier.
	chain := &passdb.Chain{Entries: []passdb.Entry{passdb.NewEntry("contract", db)}, UsernameChars: ""}
	verify := func(user, pass string) (auth.Result, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return chain.Verify(ctx, &auth.Request{Service: "imap", User: user, Password: pass})
	}
	expect := func(t *testing.T, user, pass string, want auth.Status) {
		t.Helper()
		res, err := verify(user, pass)
		if err != nil || res.Status != want {
			t.Fatalf("%q/%q: got %v, %v; want %v", user, pass, res.Status, err, want)
		}
	}
	t.Run("right password", func(t *testing.T) { expect(t, f.User, f.Password, auth.StatusOK) })
	t.Run("wrong password", func(t *testing.T) { expect(t, f.User, f.Password+"x", auth.StatusPasswordMismatch) })
	t.Run("empty password never works", func(t *testing.T) { expect(t, f.User, "", auth.StatusPasswordMismatch) })
	if f.Unknown != "" {
		t.Run("unknown user", func(t *testing.T) { expect(t, f.Unknown, f.Password, auth.StatusUserUnknown) })
		t.Run("injection attempts are unknown users", func(t *testing.T) {
			for _, evil := range []string{"*", "*)(uid=*", "*)(|(uid=*", f.User + ")(uid=*", "' OR 1=1 -- ", "' OR '1'='1", `" OR ""="`, f.User + "' -- "} {
				expect(t, evil, f.Password, auth.StatusUserUnknown)
				// With no password either, the answer is a refusal (unknown,
				// or mismatch when the password is checked first).
				if res, err := verify(evil, ""); err != nil || res.Status == auth.StatusOK {
					t.Fatalf("%q with no password: %v, %v", evil, res.Status, err)
				}
			}
		})
	}
	t.Run("concurrent use", func(t *testing.T) {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				for j := 0; j < 10; j++ {
					pass, want := f.Password, auth.StatusOK
					if (i+j)%3 == 0 {
						pass, want = f.Password+"x", auth.StatusPasswordMismatch
					}
					if res, err := verify(f.User, pass); err != nil || res.Status != want {
						t.Errorf("concurrent: got %v, %v; want %v", res.Status, err, want)
						return
					}
				}
			}(i)
		}
		wg.Wait()
	})
	if f.Down != nil {
		t.Run("server down is a temporary failure", func(t *testing.T) {
			f.Down(t)
			defer f.Up(t)
			for _, pass := range []string{f.Password, f.Password + "x"} {
				res, err := verify(f.User, pass)
				if err == nil || auth.KindOf(err) != auth.KindTemporary {
					t.Fatalf("got %v, %v; want a temporary failure, never a verdict", res.Status, err)
				}
			}
		})
		t.Run("recovers after the outage", func(t *testing.T) {
			deadline := time.Now().Add(20 * time.Second)
			for {
				res, err := verify(f.User, f.Password)
				if err == nil && res.Status == auth.StatusOK {
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("still failing after the server came back: %v, %v", res.Status, err)
				}
				time.Sleep(200 * time.Millisecond)
			}
		})
	}
}
