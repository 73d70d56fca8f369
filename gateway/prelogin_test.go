// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// plConn is a connection that knows whether it was closed.
type plConn struct {
	net.Conn
	closed bool
}

func (c *plConn) Close() error { c.closed = true; return nil }

func newPLConn() *plConn {
	a, b := net.Pipe()
	b.Close()
	return &plConn{Conn: a}
}

func TestPreloginTableEvictsBusiestOldestIdle(t *testing.T) {
	tab := newPreloginTable(5, 0, nil)
	tab.staleAfter = 0 // every idle connection counts as sitting
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	var conns []*plConn
	var entries []*preloginEntry
	admit := func(addr string) *preloginEntry {
		c := newPLConn()
		conns = append(conns, c)
		e := tab.admit(c, ip(addr))
		entries = append(entries, e)
		return e
	}
	// 127.1.0.1 holds three, 127.1.0.2 two: full.
	for _, a := range []string{"127.1.0.1", "127.1.0.2", "127.1.0.1", "127.1.0.2", "127.1.0.1"} {
		if admit(a) == nil {
			t.Fatalf("admit %s refused below the bound", a)
		}
	}
	// The busiest address's oldest is logging in: its next oldest goes.
	entries[0].busy.Store(true)
	if admit("127.1.0.3") == nil {
		t.Fatal("a new connection found no room")
	}
	if conns[0].closed || !conns[2].closed {
		t.Fatalf("evicted: first %v, third %v; want the oldest idle of the busiest address (the third)", conns[0].closed, conns[2].closed)
	}
	if st := tab.total; st != 5 {
		t.Fatalf("total %d, want 5", st)
	}
	// Everything busy (a credential-stuffing run keeps its connections
	// logging in): the oldest connection of a crowded address makes room
	// all the same, or such a run could hold every place.
	for _, e := range entries {
		if e != nil {
			e.busy.Store(true)
		}
	}
	newest := tab.admit(newPLConn(), ip("127.1.0.9"))
	if newest == nil {
		t.Fatal("refused although crowded addresses hold the table")
	}
	if tab.refused.Load() != 0 || tab.evicted.Load() != 2 {
		t.Fatalf("refused %d evicted %d, want 0 and 2", tab.refused.Load(), tab.evicted.Load())
	}
	// Leaving (a login, a hang-up) frees a place; leaving twice, or
	// after an eviction, is harmless.
	before := tab.total
	tab.leave(newest)
	tab.leave(newest)
	tab.leave(entries[2]) // evicted before
	if tab.total != before-1 {
		t.Fatalf("total %d after one left, was %d", tab.total, before)
	}
	if tab.admit(newPLConn(), ip("127.1.0.9")) == nil {
		t.Fatal("no room after a connection left")
	}
}

func TestPreloginTablePerIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tab := newPreloginTable(0, 3, trusted)
	flood := netip.MustParseAddr("192.0.2.7")
	var conns []*plConn
	for i := 0; i < 10; i++ {
		c := newPLConn()
		conns = append(conns, c)
		if tab.admit(c, flood) == nil {
			t.Fatalf("connection %d refused: an idle one should make room", i)
		}
	}
	if n := len(tab.byIP[flood]); n != 3 {
		t.Fatalf("%d held for one address, want 3", n)
	}
	for i, c := range conns {
		if want := i < 7; c.closed != want {
			t.Errorf("connection %d closed=%v, want %v (the newest three stay)", i, c.closed, want)
		}
	}
	// Another address is not affected, and trusted proxies are not
	// bounded per address.
	if tab.admit(newPLConn(), netip.MustParseAddr("192.0.2.8")) == nil {
		t.Fatal("another address refused")
	}
	for i := 0; i < 10; i++ {
		if tab.admit(newPLConn(), netip.MustParseAddr("10.1.2.3")) == nil {
			t.Fatal("a trusted address was bounded")
		}
	}
	if n := len(tab.byIP[netip.MustParseAddr("10.1.2.3")]); n != 10 {
		t.Fatalf("trusted address holds %d, want 10", n)
	}
}

// TestPreloginLoginNotEvicted: a connection whose login is in progress
// keeps its place; after the login it is no longer counted at all.
func TestPreloginLoginNotEvicted(t *testing.T) {
	tab := newPreloginTable(1, 0, nil)
	c1 := newPLConn()
	cc := &ClientConn{plEntry: tab.admit(c1, netip.MustParseAddr("127.0.0.1")), plTable: tab}
	_, done := cc.loginStart(context.Background())
	if tab.admit(newPLConn(), netip.MustParseAddr("127.0.0.2")) != nil || c1.closed {
		t.Fatal("a logging-in connection was evicted")
	}
	done()
	cc.leavePrelogin()
	if tab.total != 0 {
		t.Fatalf("a logged-in connection still counted: %d", tab.total)
	}
	if tab.admit(newPLConn(), netip.MustParseAddr("127.0.0.2")) == nil {
		t.Fatal("no room once the first logged in")
	}
}

// TestPreloginFreshConnectionsNotBusiest: an address whose connections
// are all fresh (clients logging in) is not the busiest, however many it
// has; connections that sat go first.
func TestPreloginFreshConnectionsNotBusiest(t *testing.T) {
	tab := newPreloginTable(6, 0, nil)
	tab.staleAfter = time.Hour
	var sitting []*plConn
	for i := range 2 {
		c := newPLConn()
		sitting = append(sitting, c)
		e := tab.admit(c, netip.MustParseAddr("127.1.0."+strconv.Itoa(i+1)))
		e.at = time.Now().Add(-2 * time.Hour) // sat for two hours
	}
	var fresh []*plConn
	for range 4 {
		c := newPLConn()
		fresh = append(fresh, c)
		tab.admit(c, netip.MustParseAddr("127.0.0.1"))
	}
	for range 2 {
		c := newPLConn()
		fresh = append(fresh, c)
		if tab.admit(c, netip.MustParseAddr("127.0.0.1")) == nil {
			t.Fatal("refused")
		}
	}
	for i, c := range sitting {
		if !c.closed {
			t.Errorf("sitting connection %d kept", i)
		}
	}
	for i, c := range fresh {
		if c.closed {
			t.Errorf("fresh connection %d of the busy address closed", i)
		}
	}
}

// TestPreloginUnixClientsUnbounded: clients of a UNIX socket have no
// address and are not bounded per address.
func TestPreloginUnixClientsUnbounded(t *testing.T) {
	tab := newPreloginTable(0, 2, nil)
	for i := range 10 {
		c := newPLConn()
		if tab.admit(c, netip.Addr{}) == nil || c.closed {
			t.Fatalf("local client %d refused or closed", i)
		}
	}
}
