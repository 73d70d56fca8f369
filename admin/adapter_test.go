// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
)

// TestDirectorOps runs the socket over the real director functions (the
// memory store): a user with a session is listed, looked up, kicked (its
// session ends, it stays where it was) and moved; a host goes down.
func TestDirectorOps(t *testing.T) {
	hosts := mustParse("127.0.0.11", "127.0.0.12")
	d, err := director.New(director.Config{Hosts: hosts, UserExpire: time.Minute, Store: memory.New(), Logger: discardLog()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := d.Start(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	ops := &DirectorOps{D: d, Configured: hosts, Name: "local",
		Username: func(u string) (string, error) {
			if !strings.Contains(u, "@") {
				u += "@example.org"
			}
			return u, nil
		}}
	const user = "someone@example.org"
	lease, err := d.Acquire(ctx, user, "")
	if err != nil {
		t.Fatal(err)
	}
	var kicked atomic.Int32
	lease.OnKick(func() {
		kicked.Add(1)
		lease.Release()
	})
	home := lease.Backend
	other := "127.0.0.11"
	if home == other {
		other = "127.0.0.12"
	}

	path := startSocket(t, ops, 0)
	a := dialAdmin(t, path)
	hl := a.list("HOST-LIST")
	if len(hl) != 2 {
		t.Fatalf("HOST-LIST: %q", hl)
	}
	for _, l := range hl {
		f := strings.Split(l, "\t")
		if want := map[bool]string{true: "1", false: "0"}[f[0] == home]; f[2] != want {
			t.Errorf("HOST-LIST line %q: users %s, want %s", l, f[2], want)
		}
	}
	look := strings.Split(a.cmd("USER-LOOKUP\tsomeone"), "\t")
	if len(look) != 4 || look[0] != home || look[2] != home || look[3] != home {
		t.Errorf("USER-LOOKUP someone (completed to %s): %q, want %s everywhere", user, look, home)
	}
	if gws := a.list("DIRECTOR-LIST"); len(gws) != 1 || !strings.HasPrefix(gws[0], "local\t0\tself\t0\tring synced - 1 sessions") {
		t.Errorf("DIRECTOR-LIST: %q", gws)
	}
	if got := a.cmd("USER-KICK\t" + user); got != "OK" || kicked.Load() != 1 {
		t.Fatalf("USER-KICK: %q, kicked %d", got, kicked.Load())
	}
	if a, ok, _ := d.Store().Get(ctx, "/"+user); !ok || a.Backend != home {
		t.Errorf("after the kick the user is on %+v, want still %s", a, home)
	}
	if got := a.cmd(fmt.Sprintf("USER-MOVE\t%d\t%s", director.UserHash(user), other)); got != "OK" {
		t.Fatalf("USER-MOVE: %q", got)
	}
	if a, ok, _ := d.Store().Get(ctx, "/"+user); !ok || a.Backend != other {
		t.Errorf("after the move the user is on %+v, want %s", a, other)
	}
	if got := a.cmd("HOST-DOWN\t" + other); got != "OK" {
		t.Fatalf("HOST-DOWN: %q", got)
	}
	if got := a.cmd("USER-MOVE\t" + user + "\t" + other); got != "host is down: "+other {
		t.Errorf("USER-MOVE to a down host: %q", got)
	}
	if got := a.cmd("HOST-REMOVE\t" + home); got != "OK" {
		t.Fatalf("HOST-REMOVE: %q", got)
	}
	if got := a.cmd("HOST-REMOVE\t" + other); got != ErrLastHost.Error() {
		t.Errorf("HOST-REMOVE of the last host: %q", got)
	}
	if got := a.list("HOST-LIST-REMOVED"); len(got) != 1 || got[0] != home {
		t.Errorf("HOST-LIST-REMOVED: %q", got)
	}
}
