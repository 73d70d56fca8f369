// SPDX-License-Identifier: Apache-2.0

package director_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func mustHosts(t *testing.T, s ...string) []director.Host {
	t.Helper()
	h, err := director.ParseHosts(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func newDirector(t *testing.T, c *clock, store director.Store, hosts []director.Host) *director.Director {
	t.Helper()
	d, err := director.New(director.Config{Hosts: hosts, UserExpire: time.Minute, Store: store, Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// findUser returns a user whose ring host under hosts is want.
func findUser(t *testing.T, d *director.Director, want string) string {
	t.Helper()
	for i := 0; i < 10000; i++ {
		u := fmt.Sprintf("user%d", i)
		if ip, _, _ := d.Hashed(u, ""); ip == want {
			return u
		}
	}
	t.Fatalf("no user hashes to %s", want)
	return ""
}

func TestStickinessBeatsTheRing(t *testing.T) {
	ctx := context.Background()
	c, store := newClock(), memory.New()
	d1 := newDirector(t, c, store, mustHosts(t, "127.0.0.11", "127.0.0.12"))
	user := findUser(t, d1, "127.0.0.11")

	l, err := d1.Acquire(ctx, user, "")
	if err != nil || l.Backend != "127.0.0.11" || l.Reason != director.Hashed {
		t.Fatalf("first: %+v, %v", l, err)
	}
	// Same store, ring now drains .11: the live assignment still holds.
	hosts := mustHosts(t, "127.0.0.11 0", "127.0.0.12")
	d2 := newDirector(t, c, store, hosts)
	l2, err := d2.Acquire(ctx, user, "")
	if err != nil || l2.Backend != "127.0.0.11" || l2.Reason != director.Sticky {
		t.Fatalf("sticky: %+v, %v", l2, err)
	}
	l.Release()
	l2.Release()
	// user_expire after the last session, the ring decides again.
	c.Add(time.Minute + time.Second)
	l3, err := d2.Acquire(ctx, user, "")
	if err != nil || l3.Backend != "127.0.0.12" || l3.Reason != director.Hashed {
		t.Fatalf("after expiry: %+v, %v", l3, err)
	}
}

func TestOpenSessionKeepsAssignmentAlive(t *testing.T) {
	ctx := context.Background()
	c, store := newClock(), memory.New()
	d := newDirector(t, c, store, mustHosts(t, "127.0.0.11", "127.0.0.12"))
	user := findUser(t, d, "127.0.0.11")
	l, err := d.Acquire(ctx, user, "")
	if err != nil {
		t.Fatal(err)
	}
	// Ten minutes of an open session with refreshes every 20 s (Run's period
	// for a 1-minute expiry), driven by hand.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i := 0; i < 30; i++ {
		c.Add(20 * time.Second)
		refresh(runCtx, d)
	}
	d2 := newDirector(t, c, store, mustHosts(t, "127.0.0.11 0", "127.0.0.12"))
	l2, err := d2.Acquire(ctx, user, "")
	if err != nil || l2.Backend != "127.0.0.11" {
		t.Fatalf("assignment lapsed under an open session: %+v, %v", l2, err)
	}
	l.Release()
	l2.Release()
	l.Release() // idempotent
	if n := d.ActiveUsers(); n != 0 {
		t.Fatalf("ActiveUsers = %d after release", n)
	}
}

// refresh runs one refresh round through Run's ticker-free path.
func refresh(ctx context.Context, d *director.Director) { director.RefreshForTest(ctx, d) }

func TestNoUsableHostIsTemporary(t *testing.T) {
	c := newClock()
	hosts := mustHosts(t, "127.0.0.11")
	hosts[0].Down = true
	d := newDirector(t, c, memory.New(), hosts)
	_, err := d.Acquire(context.Background(), "alice", "")
	if err == nil || auth.KindOf(err) != auth.KindTemporary {
		t.Fatalf("got %v, want a temporary failure", err)
	}
	_, err = d.Acquire(context.Background(), "alice", "nosuchtag")
	if err == nil || auth.KindOf(err) != auth.KindTemporary {
		t.Fatalf("unknown tag: got %v, want a temporary failure", err)
	}
}

func TestRemovedBackendIsForgotten(t *testing.T) {
	ctx := context.Background()
	c, store := newClock(), memory.New()
	d := newDirector(t, c, store, mustHosts(t, "127.0.0.11", "127.0.0.12"))
	user := findUser(t, d, "127.0.0.11")
	l, _ := d.Acquire(ctx, user, "")
	defer l.Release()
	d2 := newDirector(t, c, store, mustHosts(t, "127.0.0.12"))
	l2, err := d2.Acquire(ctx, user, "")
	if err != nil || l2.Backend != "127.0.0.12" {
		t.Fatalf("got %+v, %v", l2, err)
	}
}

func TestTagsHaveTheirOwnRing(t *testing.T) {
	c := newClock()
	d := newDirector(t, c, memory.New(), mustHosts(t, "127.0.0.11@a", "127.0.0.12@b"))
	for _, tag := range []string{"a", "b"} {
		want := map[string]string{"a": "127.0.0.11", "b": "127.0.0.12"}[tag]
		l, err := d.Acquire(context.Background(), "alice", tag)
		if err != nil || l.Backend != want {
			t.Fatalf("tag %s: %+v, %v", tag, l, err)
		}
	}
}

func TestUsernameHashLowercases(t *testing.T) {
	d := newDirector(t, newClock(), memory.New(), mustHosts(t, "127.0.0.11", "127.0.0.12", "127.0.0.13"))
	for i := 0; i < 200; i++ {
		a, _, _ := d.Hashed(fmt.Sprintf("User%d@Example.COM", i), "")
		b, _, _ := d.Hashed(fmt.Sprintf("user%d@example.com", i), "")
		if a != b {
			t.Fatalf("case changed placement: %s vs %s", a, b)
		}
	}
}

func TestWeightsShareUsers(t *testing.T) {
	// Dovecot's doc: vhosts A=50, B=100, C=200 share users about 14/29/57 %.
	d := newDirector(t, newClock(), memory.New(), mustHosts(t, "10.0.0.1 50", "10.0.0.2 100", "10.0.0.3 200"))
	count := map[string]int{}
	const n = 20000
	for i := 0; i < n; i++ {
		ip, _, _ := d.Hashed(fmt.Sprintf("u%d", i), "")
		count[ip]++
	}
	for ip, want := range map[string]float64{"10.0.0.1": 0.14, "10.0.0.2": 0.29, "10.0.0.3": 0.57} {
		got := float64(count[ip]) / n
		if got < want-0.07 || got > want+0.07 {
			t.Errorf("%s got %.2f of users, want about %.2f", ip, got, want)
		}
	}
}

func TestConcurrentAcquireAgrees(t *testing.T) {
	c, store := newClock(), memory.New()
	d := newDirector(t, c, store, mustHosts(t, "127.0.0.11", "127.0.0.12"))
	var wg sync.WaitGroup
	got := make([]string, 64)
	for i := range got {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			l, err := d.Acquire(context.Background(), "bob", "")
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = l.Backend
			l.Release()
		}(i)
	}
	wg.Wait()
	for _, b := range got {
		if b != got[0] {
			t.Fatalf("two backends for one user: %v", got)
		}
	}
}

func TestFencedEndsSessionsAndRefuses(t *testing.T) {
	ctx := context.Background()
	d := newDirector(t, newClock(), memory.New(), mustHosts(t, "127.0.0.11", "127.0.0.12"))
	l, err := d.Acquire(ctx, "alice", "")
	if err != nil {
		t.Fatal(err)
	}
	kicked := make(chan struct{})
	l.OnKick(func() { close(kicked); l.Release() })
	d.Fenced(true)
	select {
	case <-kicked:
	case <-time.After(5 * time.Second):
		t.Fatal("a fenced gateway kept its session")
	}
	if _, err := d.Acquire(ctx, "alice", ""); !errors.Is(err, director.ErrFenced) || auth.KindOf(err) != auth.KindTemporary {
		t.Fatalf("fenced: got %v, want a temporary ErrFenced", err)
	}
	d.Fenced(false)
	if l, err := d.Acquire(ctx, "alice", ""); err != nil {
		t.Fatalf("after fencing: %v", err)
	} else {
		l.Release()
	}
}

// TestAssignmentLostUnderSessionEndsIt: a refresh that finds the user
// assigned elsewhere (behind this gateway's back) ends the session here.
func TestAssignmentLostUnderSessionEndsIt(t *testing.T) {
	ctx := context.Background()
	c, store := newClock(), memory.New()
	d := newDirector(t, c, store, mustHosts(t, "127.0.0.11", "127.0.0.12"))
	user := findUser(t, d, "127.0.0.11")
	l, err := d.Acquire(ctx, user, "")
	if err != nil {
		t.Fatal(err)
	}
	var kicked atomic.Bool
	l.OnKick(func() { kicked.Store(true) })
	key, _ := d.StoreKey(user, "")
	store.Delete(ctx, key)
	store.Claim(ctx, key, director.Assignment{Backend: "127.0.0.12", Expires: c.Now().Add(time.Hour)}, c.Now())
	refresh(ctx, d)
	if !kicked.Load() {
		t.Fatal("session kept on a backend its user no longer has")
	}
	// An OnKick set after the kick runs at once.
	var late atomic.Bool
	l.OnKick(func() { late.Store(true) })
	if !late.Load() {
		t.Fatal("a kick registered after the fact did not run")
	}
	l.Release()
}

// TestHeldUserWithoutWaiting: a caller that holds leases already (an LMTP
// transaction) is answered at once for a user a move holds, instead of
// waiting for a move that waits for it.
func TestHeldUserWithoutWaiting(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	d := newDirector(t, newClock(), store, mustHosts(t, "127.0.0.11", "127.0.0.12"))
	if err := d.Start(ctx, "test"); err != nil {
		t.Fatal(err)
	}
	user := findUser(t, d, "127.0.0.11")
	var other string
	for i := 0; other == ""; i++ {
		if u := fmt.Sprintf("other%d", i); u != user {
			if ip, _, _ := d.Hashed(u, ""); ip == "127.0.0.11" {
				other = u
			}
		}
	}
	// The transaction's first recipient: a lease on the host to be moved.
	first, err := d.Acquire(ctx, other, "")
	if err != nil || first.Backend != "127.0.0.11" {
		t.Fatal(first, err)
	}
	l, _ := d.Acquire(ctx, user, "")
	l.Release()
	moved := make(chan error, 1)
	go func() { moved <- director.Flush(ctx, store, "127.0.0.11", "test") }()
	// Wait until the move holds the host.
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := d.Acquire(director.WithoutHoldWait(ctx), user, "")
		if err == nil {
			l.Release()
		} else {
			if auth.KindOf(err) != auth.KindTemporary {
				t.Fatalf("got %v, want a temporary failure", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the move never held the user")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first.Release()
	if err := <-moved; err != nil {
		t.Fatal(err)
	}
}
