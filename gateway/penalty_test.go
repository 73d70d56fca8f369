// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net/netip"
	"testing"
	"time"
)

func TestPenaltyDoublesUpToMax(t *testing.T) {
	now := time.Unix(1e9, 0)
	p := &Penalty{Delay: 2 * time.Second, Max: 15 * time.Second, Now: func() time.Time { return now },
		Exempt: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if p.Wait(a) != 0 {
		t.Fatal("penalty before any failure")
	}
	var got []time.Duration
	for i := 0; i < 5; i++ {
		p.Failed(a)
		got = append(got, p.Wait(a))
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("waits %v, want %v", got, want)
		}
	}
	if p.Wait(b) != 0 {
		t.Fatal("another address was slowed down")
	}
	p.Failed(netip.MustParseAddr("10.1.2.3"))
	if p.Wait(netip.MustParseAddr("10.1.2.3")) != 0 {
		t.Fatal("a trusted address was penalized")
	}
	now = now.Add(2 * time.Hour)
	if p.Wait(a) != 0 {
		t.Fatal("the penalty never expires")
	}
}

func TestPenaltyIPv6Per48(t *testing.T) {
	p := &Penalty{Max: 15 * time.Second}
	p.Failed(netip.MustParseAddr("2001:db8:1:2::1"))
	if p.Wait(netip.MustParseAddr("2001:db8:1:ffff::9")) == 0 {
		t.Fatal("same /48 not penalized")
	}
	if p.Wait(netip.MustParseAddr("2001:db8:2::1")) != 0 {
		t.Fatal("another /48 penalized")
	}
	var none *Penalty
	none.Failed(netip.MustParseAddr("192.0.2.1"))
	if none.Wait(netip.MustParseAddr("192.0.2.1")) != 0 {
		t.Fatal("nil penalty waits")
	}
}

// TestPenaltySucceededForgets: a login that got in resets its address's
// penalty, as Dovecot's does; other addresses keep theirs.
func TestPenaltySucceededForgets(t *testing.T) {
	p := &Penalty{Max: 15 * time.Second}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")
	for range 3 {
		p.Failed(a)
		p.Failed(b)
	}
	if p.Wait(a) == 0 || p.Wait(b) == 0 {
		t.Fatal("no penalty after failures")
	}
	p.Succeeded(a)
	if w := p.Wait(a); w != 0 {
		t.Errorf("penalty %v after a successful login", w)
	}
	if p.Wait(b) == 0 {
		t.Error("another address was forgiven")
	}
	var nilPenalty *Penalty
	nilPenalty.Succeeded(a) // no penalty configured: nothing to do
}
