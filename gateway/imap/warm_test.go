// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/gateway"
)

// A login takes a warm backend connection; when the backend drops it
// during the login, the login runs again on a new connection and the
// client hears only the OK.
func TestWarmConnectionDroppedDuringLogin(t *testing.T) {
	var logins atomic.Int64
	e := start(t, func(s *setup) {
		s.pipeline.Warm = gateway.NewWarmPool(1)
		t.Cleanup(s.pipeline.Warm.Close)
		s.backend.answer = func(user, pass, authzid string) string {
			if logins.Add(1) == 2 {
				return "" // hang up
			}
			return fakeOK
		}
	})
	c := e.connect()
	c.Do("a LOGIN bob secret", "a "+fakeOK)
	c.Conn.Close()
	for i := 0; e.pipeline.Warm.Idle() == 0; i++ {
		if i > 500 {
			t.Fatal("the warm pool never filled")
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := e.backend.connections()
	c = e.connect()
	c.Do("a LOGIN bob secret", "a "+fakeOK)
	if n := logins.Load(); n != 3 {
		t.Errorf("the backend saw %d logins, want 3 (the first, the dropped one, its retry)", n)
	}
	// The dropped one was warm (made before this login), the retry new.
	if n := e.backend.connections() - before; n < 1 {
		t.Errorf("%d new backend connections for the retry", n)
	}
}
