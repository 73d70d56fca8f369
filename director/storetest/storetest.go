// SPDX-License-Identifier: Apache-2.0

// Package storetest is the contract every director.Store passes: the same
// table runs against the memory store and against real etcd (an embedded
// server in the test process, and Debian's etcd binary in the integration
// tests). Each case drives real Directors, as gateways would.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
)

// Backend is what a contract run needs from the store under test.
type Backend struct {
	// Open returns a store on the shared state, as one gateway would
	// open it (the memory store returns the same one each time). Stores
	// are closed by the suite.
	Open func(t *testing.T) director.Store
	// Shared says whether stores from Open are separate clients of one
	// cluster (etcd): changes reach the others through the store.
	Shared bool
	// Outage, when set, makes the store unreachable for the stores opened
	// so far and returns a function that brings it back (fencing tests).
	Outage func(t *testing.T) (restore func())
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const expire = 10 * time.Second

// gateway is a director on its own store, started like serve does.
func gateway(t *testing.T, b Backend, hosts ...string) *director.Director {
	t.Helper()
	hs, err := director.ParseHosts(hosts)
	if err != nil {
		t.Fatal(err)
	}
	s := b.Open(t)
	d, err := director.New(director.Config{Hosts: hs, UserExpire: expire, Store: s, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Start(ctx, t.Name()); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	go d.Run(runCtx)
	t.Cleanup(func() {
		stop()
		s.Close()
	})
	waitFor(t, "the gateway to join", func() bool { return !d.IsFenced() })
	return d
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// userOn returns a user the ring of d places on ip.
func userOn(t *testing.T, d *director.Director, ip string, skip int) string {
	t.Helper()
	for i := 0; i < 100000; i++ {
		u := fmt.Sprintf("user%05d@example.org", i)
		if got, _, _ := d.Hashed(u, ""); got == ip {
			if skip == 0 {
				return u
			}
			skip--
		}
	}
	t.Fatalf("no user hashes to %s", ip)
	return ""
}

// Run runs the contract.
func Run(t *testing.T, b Backend) {
	t.Run("ConcurrentClaimsAgree", func(t *testing.T) { concurrentClaims(t, b) })
	t.Run("SeedOnceThenStoreWins", func(t *testing.T) { seedOnce(t, b) })
	t.Run("StickyUntilExpiry", func(t *testing.T) { stickyUntilExpiry(t, b) })
	t.Run("RefreshReportsLostKeys", func(t *testing.T) { refreshLost(t, b) })
	t.Run("HostDownMovesSafely", func(t *testing.T) { hostDownMoves(t, b) })
	t.Run("MoveWaitsForDeliveries", func(t *testing.T) { moveWaitsForDeliveries(t, b) })
	t.Run("MoveUser", func(t *testing.T) { moveUser(t, b) })
	t.Run("KickKeepsAssignment", func(t *testing.T) { kick(t, b) })
	t.Run("UpdateHostLosesNothing", func(t *testing.T) { updateHost(t, b) })
	t.Run("WhoAsksEveryGateway", func(t *testing.T) { who(t, b) })
	t.Run("TagMovesUsersFirst", func(t *testing.T) { tagHost(t, b) })
	t.Run("DrainWaitsThenKicks", func(t *testing.T) { drain(t, b) })
	if b.Outage != nil {
		t.Run("FencedWhileStoreIsGone", func(t *testing.T) { fenced(t, b) })
	}
}

// concurrentClaims: gateways whose files disagree about the hosts claim
// one user at once; every claim gets the same backend.
func concurrentClaims(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	defer s.Close()
	const n = 16
	var wg sync.WaitGroup
	got := make([]string, n)
	now := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st := s
			if b.Shared && i%2 == 1 {
				st = b.Open(t)
				defer st.Close()
			}
			proposed := fmt.Sprintf("127.0.0.%d", 11+i%4)
			a, _, err := st.Claim(ctx, "/race@example.org", director.Assignment{Backend: proposed, Expires: now.Add(expire)}, now)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = a.Backend
		}(i)
	}
	wg.Wait()
	for _, g := range got {
		if g != got[0] {
			t.Fatalf("one user, several backends: %v", got)
		}
	}
	a, ok, err := s.Get(ctx, "/race@example.org")
	if err != nil || !ok || a.Backend != got[0] {
		t.Fatalf("stored %+v %v %v, claimed %s", a, ok, err, got[0])
	}
}

func seedOnce(t *testing.T, b Backend) {
	ctx := context.Background()
	d1 := gateway(t, b, "127.0.0.11", "127.0.0.12 50")
	// A second gateway whose file lists one host only agrees with the
	// store, not with its file.
	d2 := gateway(t, b, "127.0.0.11")
	want := "127.0.0.11 100,127.0.0.12 50"
	for _, d := range []*director.Director{d1, d2} {
		if got := hostsString(d.Hosts()); got != want {
			t.Fatalf("hosts %q, want %q", got, want)
		}
	}
	if diff := director.HostDiff(mustParse(t, "127.0.0.11"), d2.Hosts()); len(diff) != 1 {
		t.Fatalf("diff %q", diff)
	}
	// A runtime change reaches every gateway.
	if err := director.SetVHosts(ctx, d1.Store(), "127.0.0.12", 7, "test"); err != nil {
		t.Fatal(err)
	}
	want = "127.0.0.11 100,127.0.0.12 7"
	for _, d := range []*director.Director{d1, d2} {
		waitFor(t, "the vhost change", func() bool { return hostsString(d.Hosts()) == want })
	}
	hs, err := d2.Store().Hosts(ctx)
	if err != nil || hostsString(hs) != want || hs[1].ChangedBy != "test" {
		t.Fatalf("stored %+v %v", hs, err)
	}
}

func mustParse(t *testing.T, s ...string) []director.Host {
	h, err := director.ParseHosts(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func hostsString(hs []director.HostRecord) string {
	s := ""
	for i, h := range hs {
		if i > 0 {
			s += ","
		}
		s += h.Host.String()
	}
	return s
}

func stickyUntilExpiry(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	defer s.Close()
	now := time.Now()
	a, created, err := s.Claim(ctx, "/sticky", director.Assignment{Backend: "127.0.0.11", Expires: now.Add(time.Second)}, now)
	if err != nil || !created || a.Backend != "127.0.0.11" {
		t.Fatalf("%+v %v %v", a, created, err)
	}
	a, created, err = s.Claim(ctx, "/sticky", director.Assignment{Backend: "127.0.0.12", Expires: now.Add(time.Second)}, now)
	if err != nil || created || a.Backend != "127.0.0.11" {
		t.Fatalf("live assignment not kept: %+v %v %v", a, created, err)
	}
	later := now.Add(2 * time.Second)
	a, created, err = s.Claim(ctx, "/sticky", director.Assignment{Backend: "127.0.0.12", Expires: later.Add(time.Second)}, later)
	if err != nil || !created || a.Backend != "127.0.0.12" {
		t.Fatalf("expired assignment not replaced: %+v %v %v", a, created, err)
	}
}

func refreshLost(t *testing.T, b Backend) {
	ctx := context.Background()
	s := b.Open(t)
	defer s.Close()
	now := time.Now()
	if _, _, err := s.Claim(ctx, "/r1", director.Assignment{Backend: "127.0.0.11", Expires: now.Add(time.Minute)}, now); err != nil {
		t.Fatal(err)
	}
	until := now.Add(time.Hour)
	lost, err := s.Refresh(ctx, []director.Refresh{
		{Key: "/r1", Backend: "127.0.0.11", Until: until},
		{Key: "/r1-gone", Backend: "127.0.0.11", Until: until},
	})
	if err != nil || len(lost) != 1 || lost[0] != "/r1-gone" {
		t.Fatalf("lost %v, %v", lost, err)
	}
	a, _, _ := s.Get(ctx, "/r1")
	if a.Expires.Before(until.Add(-time.Second)) {
		t.Fatalf("not extended: %v", a.Expires)
	}
	lost, err = s.Refresh(ctx, []director.Refresh{{Key: "/r1", Backend: "127.0.0.12", Until: until}})
	if err != nil || len(lost) != 1 {
		t.Fatalf("refresh for another backend: lost %v, %v", lost, err)
	}
}

// session is a fake relayed session: a lease whose kick is recorded.
type session struct {
	l      *director.Lease
	kicked atomic.Bool
}

func open(t *testing.T, d *director.Director, user string) *session {
	t.Helper()
	l, err := d.Acquire(context.Background(), user, "")
	if err != nil {
		t.Fatalf("acquire %s: %v", user, err)
	}
	s := &session{l: l}
	l.OnKick(func() {
		s.kicked.Store(true)
		l.Release() // the relay ends and releases its lease
	})
	return s
}

func hostDownMoves(t *testing.T, b Backend) {
	ctx := context.Background()
	g1 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	g2 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	user := userOn(t, g1, "127.0.0.11", 0)
	other := userOn(t, g1, "127.0.0.12", 0)
	s1, s2 := open(t, g1, user), open(t, g2, user)
	o := open(t, g1, other)
	if s1.l.Backend != "127.0.0.11" || s2.l.Backend != "127.0.0.11" {
		t.Fatalf("placed on %s and %s", s1.l.Backend, s2.l.Backend)
	}
	// While the move runs, the user's next login waits and then lands on
	// the other backend, never on the old one.
	moved := make(chan string, 1)
	started := time.Now()
	if err := director.HostDown(ctx, g1.Store(), "127.0.0.11", "test"); err != nil {
		t.Fatal(err)
	}
	if !s1.kicked.Load() || !s2.kicked.Load() {
		t.Fatalf("move returned before every gateway ended the sessions: %v %v", s1.kicked.Load(), s2.kicked.Load())
	}
	if o.kicked.Load() {
		t.Fatal("a user of another backend was kicked")
	}
	t.Logf("host down with sessions on two gateways took %v", time.Since(started).Round(time.Millisecond))
	go func() {
		l, err := g2.Acquire(ctx, user, "")
		if err != nil {
			moved <- err.Error()
			return
		}
		moved <- l.Backend
		l.Release()
	}()
	if got := <-moved; got != "127.0.0.12" {
		t.Fatalf("after the move: %s", got)
	}
	for _, g := range []*director.Director{g1, g2} {
		waitFor(t, "the down host", func() bool {
			for _, h := range g.Hosts() {
				if h.IP == "127.0.0.11" {
					return h.Down
				}
			}
			return false
		})
	}
	o.l.Release()
}

func moveWaitsForDeliveries(t *testing.T, b Backend) {
	ctx := context.Background()
	g1 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	user := userOn(t, g1, "127.0.0.11", 1)
	// An LMTP delivery: a lease without a kick, waited for.
	l, err := g1.Acquire(ctx, user, "")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- director.Flush(ctx, g1.Store(), "127.0.0.11", "test") }()
	select {
	case err := <-done:
		t.Fatalf("flush finished while a delivery was in flight: %v", err)
	case <-time.After(700 * time.Millisecond):
	}
	// A new login of that user waits for the move too.
	waited := make(chan error, 1)
	go func() {
		actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := g1.Acquire(actx, user, "")
		waited <- err
	}()
	if err := <-waited; err == nil || auth.KindOf(err) != auth.KindTemporary {
		t.Fatalf("login during the move: %v, want a temporary failure", err)
	}
	l.Release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func moveUser(t *testing.T, b Backend) {
	ctx := context.Background()
	g1 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	g2 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	user := userOn(t, g1, "127.0.0.11", 2)
	s := open(t, g2, user)
	key, _ := g1.StoreKey(user, "")
	if err := director.MoveUser(ctx, g1.Store(), key, "127.0.0.12", expire, "test"); err != nil {
		t.Fatal(err)
	}
	if !s.kicked.Load() {
		t.Fatal("session not ended by the move")
	}
	for _, g := range []*director.Director{g1, g2} {
		l, err := g.Acquire(ctx, user, "")
		if err != nil || l.Backend != "127.0.0.12" {
			t.Fatalf("after move: %+v %v", l, err)
		}
		l.Release()
	}
}

func fenced(t *testing.T, b Backend) {
	ctx := context.Background()
	g := gateway(t, b, "127.0.0.11", "127.0.0.12")
	user := userOn(t, g, "127.0.0.12", 3)
	s := open(t, g, user)
	restore := b.Outage(t)
	waitFor(t, "fencing", g.IsFenced)
	if !s.kicked.Load() {
		t.Fatal("a fenced gateway kept a session")
	}
	if _, err := g.Acquire(ctx, user, ""); err == nil || auth.KindOf(err) != auth.KindTemporary {
		t.Fatalf("fenced gateway admitted a sticky user: %v", err)
	}
	restore()
	waitFor(t, "the store to come back", func() bool { return !g.IsFenced() })
	l, err := g.Acquire(ctx, user, "")
	if err != nil || l.Backend != "127.0.0.12" {
		t.Fatalf("after the outage: %+v %v", l, err)
	}
	l.Release()
}

func kick(t *testing.T, b Backend) {
	ctx := context.Background()
	g1 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	g2 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	user := userOn(t, g1, "127.0.0.12", 4)
	s1, s2 := open(t, g1, user), open(t, g2, user)
	key, _ := g1.StoreKey(user, "")
	if err := director.Kick(ctx, g2.Store(), key, "test"); err != nil {
		t.Fatal(err)
	}
	if !s1.kicked.Load() || !s2.kicked.Load() {
		t.Fatal("kick left a session")
	}
	a, ok, err := g1.Store().Get(ctx, key)
	if err != nil || !ok || a.Backend != "127.0.0.12" {
		t.Fatalf("assignment after kick: %+v %v %v", a, ok, err)
	}
}

func drain(t *testing.T, b Backend) {
	ctx := context.Background()
	g1 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	g2 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	held := userOn(t, g1, "127.0.0.11", 5)
	fresh := userOn(t, g1, "127.0.0.11", 6)
	s1 := open(t, g2, held)
	// The gateways report what they serve.
	waitFor(t, "the load report", func() bool {
		loads, err := g1.Store().Gateways(ctx)
		if err != nil {
			return false
		}
		n := 0
		for _, l := range loads {
			n += l.Sessions["127.0.0.11"]
		}
		return n == 1
	})
	var last director.DrainProgress
	err := director.Drain(ctx, g1.Store(), "127.0.0.11", director.DrainOptions{Timeout: 1500 * time.Millisecond,
		Progress: func(p director.DrainProgress) { last = p }}, "test")
	if !errors.Is(err, director.ErrDrainTimeout) || last.Sessions != 1 || s1.kicked.Load() {
		t.Fatalf("drain without kick: %v, %+v, kicked %v", err, last, s1.kicked.Load())
	}
	// Drained: a new user is not placed there, the held one stays.
	waitFor(t, "the drained ring", func() bool {
		ip, _, _ := g2.Hashed(fresh, "")
		return ip == "127.0.0.12"
	})
	l, err := g2.Acquire(ctx, fresh, "")
	if err != nil || l.Backend != "127.0.0.12" {
		t.Fatalf("new user on a drained host: %+v %v", l, err)
	}
	l.Release()
	// Again, kicking after a moment: the held session ends, the drain
	// completes.
	if err := director.Drain(ctx, g1.Store(), "127.0.0.11", director.DrainOptions{KickAfter: 300 * time.Millisecond, Timeout: 30 * time.Second}, "test"); err != nil {
		t.Fatal(err)
	}
	if !s1.kicked.Load() {
		t.Fatal("drain completed with a session left")
	}
	if err := director.Undrain(ctx, g1.Store(), "127.0.0.11", "test"); err != nil {
		t.Fatal(err)
	}
	hs, _ := g1.Store().Hosts(ctx)
	if hs[0].VHosts != 100 || hs[0].Drained {
		t.Fatalf("after undrain: %+v", hs[0])
	}
}

// updateHost: concurrent read-modify-write changes of one host from
// several gateways all land.
func updateHost(t *testing.T, b Backend) {
	ctx := context.Background()
	g1 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	g2 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			g := []*director.Director{g1, g2}[i%2]
			err := g.Store().UpdateHost(ctx, "127.0.0.12", func(h *director.HostRecord) error {
				h.Health = append(h.Health, director.HealthEvent{Reason: fmt.Sprint(i)})
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
	hs, err := g1.Store().Hosts(ctx)
	if err != nil || len(hs) != 2 || len(hs[1].Health) != 8 {
		t.Fatalf("after 8 concurrent updates: %+v %v", hs, err)
	}
	if err := g1.Store().UpdateHost(ctx, "127.0.0.99", func(*director.HostRecord) error { return nil }); !errors.Is(err, director.ErrNotFound) {
		t.Fatalf("update of an unknown host: %v", err)
	}
}

func who(t *testing.T, b Backend) {
	ctx := context.Background()
	g1 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	g2 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	user := userOn(t, g1, "127.0.0.12", 7)
	s2 := open(t, g2, user)
	defer s2.l.Release()
	key, _ := g1.StoreKey(user, "")
	loads, err := g1.Store().Who(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	sessions := 0
	for _, u := range loads {
		sessions += u.Sessions
		if u.Sessions > 0 && u.Backend != "127.0.0.12" {
			t.Errorf("who: %+v", u)
		}
	}
	if len(loads) != 2 || sessions != 1 {
		t.Fatalf("who %s: %+v, want two gateways' answers and one session", user, loads)
	}
}

func tagHost(t *testing.T, b Backend) {
	ctx := context.Background()
	g1 := gateway(t, b, "127.0.0.11", "127.0.0.12")
	user := userOn(t, g1, "127.0.0.12", 8)
	s1 := open(t, g1, user)
	if err := director.SetTag(ctx, g1.Store(), "127.0.0.12", "b", "test"); err != nil {
		t.Fatal(err)
	}
	if !s1.kicked.Load() {
		t.Fatal("a session stayed on a host that left its group")
	}
	l, err := g1.Acquire(ctx, user, "")
	if err != nil || l.Backend != "127.0.0.11" {
		t.Fatalf("default group after the tag change: %+v %v", l, err)
	}
	l.Release()
	l, err = g1.Acquire(ctx, user, "b")
	if err != nil || l.Backend != "127.0.0.12" {
		t.Fatalf("group b: %+v %v", l, err)
	}
	l.Release()
}
