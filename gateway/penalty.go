// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Penalty slows down password guessing, as Dovecot's auth_failure_delay
// and anvil auth penalty do: every failed login is answered after Delay;
// and an address that keeps failing waits before each new attempt, twice
// as long per failure (2, 4, 8 s …) up to Max. IPv6 clients are counted
// per /48, since one host can have a whole /64 or more. Addresses in
// Exempt (trusted_networks: webmail, other proxies) are not penalized.
// The zero value does nothing; it is safe for concurrent use.
type Penalty struct {
	Delay  time.Duration // failure delay (Dovecot default 2s)
	Max    time.Duration // penalty cap (15s); 0 disables the penalty
	Exempt []netip.Prefix
	Now    func() time.Time // nil: time.Now

	mu sync.Mutex
	m  map[netip.Prefix]*penaltyEntry
}

type penaltyEntry struct {
	failures int
	last     time.Time
}

// penaltyForget: an address that stopped failing this long ago starts
// afresh.
const penaltyForget = time.Hour

func (p *Penalty) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func penaltyKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 48
	}
	pfx, _ := a.Prefix(bits)
	return pfx
}

func (p *Penalty) exempt(a netip.Addr) bool { return !a.IsValid() || contains(p.Exempt, a.Unmap()) }

// Wait returns how long a new attempt from a must wait first.
func (p *Penalty) Wait(a netip.Addr) time.Duration {
	if p == nil || p.Max <= 0 || p.exempt(a) {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	e := p.m[penaltyKey(a)]
	if e == nil || p.now().Sub(e.last) > penaltyForget {
		return 0
	}
	d := 2 * time.Second << min(e.failures-1, 10)
	return min(d, p.Max)
}

// Failed records a failed login from a.
func (p *Penalty) Failed(a netip.Addr) {
	if p == nil || p.Max <= 0 || p.exempt(a) {
		return
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[netip.Prefix]*penaltyEntry{}
	}
	if len(p.m) > 100000 {
		// Bound memory under a wide attack: forget the stale ones.
		for k, e := range p.m {
			if now.Sub(e.last) > penaltyForget {
				delete(p.m, k)
			}
		}
	}
	k := penaltyKey(a)
	e := p.m[k]
	if e == nil || now.Sub(e.last) > penaltyForget {
		e = &penaltyEntry{}
		p.m[k] = e
	}
	e.failures++
	e.last = now
}

// Succeeded forgets a's failures after a login from it succeeded, as
// Dovecot resets its auth penalty on success: a user who mistyped a
// password and then got in is not slowed down for the next hour.
func (p *Penalty) Succeeded(a netip.Addr) {
	if p == nil || p.Max <= 0 || p.exempt(a) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.m, penaltyKey(a))
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
