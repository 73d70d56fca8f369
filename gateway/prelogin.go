// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// preloginTable bounds the connections that have not logged in yet, all
// listeners together and per client address, the way Dovecot's login
// processes do when their client_limit is reached — and better: when a
// bound is reached, the oldest idle connection of the busiest address
// makes room (an address flooding the gateway pays, a client behind it
// that is actually logging in does not), and a connection only goes
// when another takes its place. Relayed sessions are never in it.
//
// "Busiest" counts only connections idle for longer than staleAfter: a
// real client logs in within moments of connecting, so an address with
// many fresh connections (a webmail's pool logging its users in) is busy,
// not flooding, and a flood's connections are the ones that sit.
//
// A connection is idle unless its login is in progress (the databases,
// the director or the backend are working on it): that work is not
// thrown away.
type preloginTable struct {
	mu sync.Mutex
	// max and perIP are the bounds (0: none); exempt addresses are not
	// bounded per address (proxies, load balancers).
	max, perIP int
	exempt     []netip.Prefix
	staleAfter time.Duration
	total      int
	byIP       map[netip.Addr][]*preloginEntry // oldest first

	evicted, refused atomic.Uint64
}

type preloginEntry struct {
	conn net.Conn
	ip   netip.Addr
	at   time.Time // admitted
	// busy is set while a login is in progress.
	busy atomic.Bool
	gone bool // removed from the table (guarded by the table's mu)
}

// setBounds changes the bounds (a reload); connections over a lowered
// bound stay until they go or are made room for.
func (t *preloginTable) setBounds(max, perIP int, exempt []netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.max, t.perIP, t.exempt = max, perIP, exempt
}

func newPreloginTable(max, perIP int, exempt []netip.Prefix) *preloginTable {
	return &preloginTable{max: max, perIP: perIP, exempt: exempt, staleAfter: staleAfter, byIP: map[netip.Addr][]*preloginEntry{}}
}

// admit registers conn from ip, making room when a bound is reached. It
// returns nil when there is no room: every connection in the way is
// logging in right now.
func (t *preloginTable) admit(conn net.Conn, ip netip.Addr) *preloginEntry {
	now := time.Now()
	e := &preloginEntry{conn: conn, ip: ip, at: now}
	var victims []*preloginEntry
	t.mu.Lock()
	// A UNIX socket's clients have no address (they are local, and
	// trusted like Dovecot's): no bound per address for them.
	if t.perIP > 0 && ip.IsValid() && !contains(t.exempt, ip) && len(t.byIP[ip]) >= t.perIP {
		v := t.oldestIdleLocked(ip)
		if v == nil {
			// Every one of them is logging in (or waiting out its
			// failed-login delay): the address pays with its oldest.
			v = t.byIP[ip][0]
		}
		victims = append(victims, v)
		t.removeLocked(v)
	}
	if t.max > 0 && t.total >= t.max {
		v := t.busiestIdleLocked(now)
		if v == nil {
			t.mu.Unlock()
			for _, v := range victims {
				v.conn.Close()
			}
			t.refused.Add(1)
			return nil
		}
		victims = append(victims, v)
		t.removeLocked(v)
	}
	t.byIP[ip] = append(t.byIP[ip], e)
	t.total++
	t.mu.Unlock()
	for _, v := range victims {
		// Its handler sees the connection closed and ends: a client
		// that was only holding a place hears nothing more.
		v.conn.Close()
		t.evicted.Add(1)
	}
	return e
}

// leave takes e out of the table (logged in, or gone); again is harmless.
func (t *preloginTable) leave(e *preloginEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !e.gone {
		t.removeLocked(e)
	}
}

func (t *preloginTable) removeLocked(e *preloginEntry) {
	e.gone = true
	list := t.byIP[e.ip]
	for i, x := range list {
		if x == e {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(t.byIP, e.ip)
	} else {
		t.byIP[e.ip] = list
	}
	t.total--
}

func (t *preloginTable) oldestIdleLocked(ip netip.Addr) *preloginEntry {
	for _, e := range t.byIP[ip] {
		if !e.busy.Load() {
			return e
		}
	}
	return nil
}

// staleAfter is how long a connection may sit before login before it
// counts towards its address being the busiest.
const staleAfter = time.Second

// evictionSample is how many addresses a full table looks at to choose
// whom to close: Go's map iteration starts at a random place, so this
// is a random sample. Looking at every address would make each new
// connection of a flood cost as much as the table is large.
const evictionSample = 16

// busiestIdleLocked picks the connection to close for room: among a
// sample of addresses, the oldest idle connection of the one with the
// most connections that sat longer than staleAfter; when none sat that
// long, the oldest idle one of the sample. When every sampled connection
// is logging in (a credential-stuffing run keeps its connections busy),
// the oldest of the sampled address with the most connections goes, if
// it has more than one: otherwise such a run could hold every place.
func (t *preloginTable) busiestIdleLocked(now time.Time) *preloginEntry {
	var best, oldest, crowded *preloginEntry
	bestN, crowdedN, seen := 0, 1, 0
	cut := now.Add(-t.staleAfter)
	for _, list := range t.byIP {
		if len(list) > crowdedN {
			crowded, crowdedN = list[0], len(list)
		}
		var first *preloginEntry
		for _, e := range list {
			if !e.busy.Load() {
				first = e
				break
			}
		}
		if first != nil {
			// Entries are in admission order: the stale ones come first.
			n := sort.Search(len(list), func(i int) bool { return list[i].at.After(cut) })
			if oldest == nil || first.at.Before(oldest.at) {
				oldest = first
			}
			if n > bestN || (n == bestN && n > 0 && first.at.Before(best.at)) {
				best, bestN = first, n
			}
		}
		if seen++; seen == evictionSample {
			break
		}
	}
	switch {
	case best != nil:
		return best
	case oldest != nil:
		return oldest
	}
	return crowded
}

// PreloginStats are the pre-login bounds' counters.
type PreloginStats struct {
	Open    int    // connections before login now (IMAP, POP3, ManageSieve)
	Max     int    // the bound (0: none)
	Evicted uint64 // idle connections closed to make room
	Refused uint64 // connections closed at once: nothing could make room
}

// PreloginStats returns the pre-login table's counters.
func (s *Server) PreloginStats() PreloginStats {
	s.mu.Lock()
	t := s.prelogin
	s.mu.Unlock()
	if t == nil {
		return PreloginStats{}
	}
	t.mu.Lock()
	open, max := t.total, t.max
	t.mu.Unlock()
	return PreloginStats{Open: open, Max: max, Evicted: t.evicted.Load(), Refused: t.refused.Load()}
}

// loginStart marks the connection's login in progress (not evictable)
// until the returned func is called; ctx carries the way back to idle
// for a wait on the way (the failed-login delay), which holds no work
// worth keeping.
func (c *ClientConn) loginStart(ctx context.Context) (context.Context, func()) {
	if c.plEntry == nil {
		return ctx, func() {}
	}
	e := c.plEntry
	e.busy.Store(true)
	idle := func() { e.busy.Store(false) }
	return context.WithValue(ctx, idleKey{}, idle), idle
}

type idleKey struct{}

// loginIdle marks the login ctx belongs to as evictable again (before a
// wait that does no work).
func loginIdle(ctx context.Context) {
	if f, ok := ctx.Value(idleKey{}).(func()); ok {
		f()
	}
}

// deadlineFrom is the absolute pre-login deadline of a connection
// accepted at start: the PROXY header, the TLS handshake and the login
// dialogue all fit in it, so a client trickling bytes cannot stretch it.
func deadlineFrom(start time.Time, l Limits) time.Time { return start.Add(l.LoginTimeout) }
