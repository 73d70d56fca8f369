// SPDX-License-Identifier: Apache-2.0

package director

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The operations below act cluster-wide through a Store; the CLI and
// (later) the admin API call them. Each names who asked (by), which the
// store keeps with the host.

// NewMoveID returns a fresh move identifier.
func NewMoveID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func findHost(ctx context.Context, s Store, ip string) (HostRecord, error) {
	hosts, err := s.Hosts(ctx)
	if err != nil {
		return HostRecord{}, err
	}
	for _, h := range hosts {
		if h.IP == ip {
			return h, nil
		}
	}
	return HostRecord{}, fmt.Errorf("%w: %s", ErrNotFound, ip)
}

// SetVHosts changes a backend's vhost count (0 takes no new users). Users
// already assigned stay.
func SetVHosts(ctx context.Context, s Store, ip string, vhosts int, by string) error {
	if vhosts < 0 || vhosts > MaxVHosts {
		return fmt.Errorf("vhost count must be 0..%d", MaxVHosts)
	}
	return s.UpdateHost(ctx, ip, func(h *HostRecord) error {
		// An explicit count ends a drain: undrain would restore the old one.
		h.VHosts, h.Drained, h.DrainedFrom, h.ChangedBy, h.ChangedAt = vhosts, false, 0, by, time.Now()
		return nil
	})
}

// AddHost adds a backend, or changes its vhost count if it exists (the
// tag of an existing host cannot change, as in Dovecot).
func AddHost(ctx context.Context, s Store, h Host, by string) error {
	err := s.UpdateHost(ctx, h.IP, func(old *HostRecord) error {
		if old.Tag != h.Tag {
			return fmt.Errorf("host %s has tag %q; a tag cannot be changed", h.IP, old.Tag)
		}
		old.VHosts, old.Drained, old.DrainedFrom, old.ChangedBy, old.ChangedAt = h.VHosts, false, 0, by, time.Now()
		return nil
	})
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	return s.PutHost(ctx, HostRecord{Host: h, ChangedBy: by, ChangedAt: time.Now()})
}

// HostUp lets a backend take new users again.
func HostUp(ctx context.Context, s Store, ip, by string) error {
	return s.UpdateHost(ctx, ip, func(h *HostRecord) error {
		if !h.Down {
			return ErrUnchanged
		}
		h.Down, h.DownBy, h.ChangedBy, h.ChangedAt = false, "", by, time.Now()
		return nil
	})
}

// HostDown marks a backend down and moves its users away, safely: their
// sessions end on every gateway before any of them is placed elsewhere.
func HostDown(ctx context.Context, s Store, ip, by string) error {
	h, err := findHost(ctx, s, ip)
	if err != nil {
		return err
	}
	h.Down, h.DownBy, h.ChangedBy, h.ChangedAt = true, DownByOperator, by, time.Now()
	return s.Move(ctx, Move{ID: NewMoveID(), Backend: ip, Reason: "down", By: by, At: time.Now(), Host: &h})
}

// HealthDown is HostDown for the health checks: the host is marked as
// taken down by them, so that they may bring it up again, and the reason
// joins its health history.
func HealthDown(ctx context.Context, s Store, ip, reason string) error {
	now := time.Now()
	var h HostRecord
	down := false
	if err := s.UpdateHost(ctx, ip, func(r *HostRecord) error {
		r.Health = appendHealth(r.Health, HealthEvent{At: now, Up: false, Reason: reason})
		h, down = *r, r.Down
		return nil
	}); err != nil {
		return err
	}
	if down {
		return nil // an operator's down stays the operator's
	}
	h.Down, h.DownBy, h.ChangedBy, h.ChangedAt = true, DownByHealth, "health: "+reason, now
	return s.Move(ctx, Move{ID: NewMoveID(), Backend: ip, Reason: "down", By: "health", At: now, Host: &h})
}

// HealthUp brings up a host the health checks took down; a host an
// operator took down stays down. It reports whether the host came up.
func HealthUp(ctx context.Context, s Store, ip, reason string) (bool, error) {
	now := time.Now()
	up := false
	err := s.UpdateHost(ctx, ip, func(h *HostRecord) error {
		h.Health = appendHealth(h.Health, HealthEvent{At: now, Up: true, Reason: reason})
		up = h.Down && h.DownBy == DownByHealth
		if up {
			h.Down, h.DownBy, h.ChangedBy, h.ChangedAt = false, "", "health: "+reason, now
		}
		return nil
	})
	return up && err == nil, err
}

func appendHealth(hs []HealthEvent, e HealthEvent) []HealthEvent {
	hs = append(hs, e)
	if len(hs) > maxHealthEvents {
		hs = hs[len(hs)-maxHealthEvents:]
	}
	return hs
}

// SetTag moves a backend to another backend group. Its users belong to
// the old group's ring, so they are moved away first (safely), in the same
// step that changes the tag — the change Dovecot refused ("host tag can't
// be changed"), made safe.
func SetTag(ctx context.Context, s Store, ip, tag, by string) error {
	if strings.Contains(tag, "/") {
		return fmt.Errorf("director: tag %q may not contain '/'", tag)
	}
	h, err := findHost(ctx, s, ip)
	if err != nil {
		return err
	}
	if h.Tag == tag {
		return nil
	}
	h.Tag, h.ChangedBy, h.ChangedAt = tag, by, time.Now()
	return s.Move(ctx, Move{ID: NewMoveID(), Backend: ip, Reason: "tag", By: by, At: time.Now(), Host: &h})
}

// Kick ends key's sessions on every gateway; the assignment stays.
func Kick(ctx context.Context, s Store, key, by string) error {
	return s.Move(ctx, Move{ID: NewMoveID(), Key: key, Keep: true, Reason: "kick", By: by, At: time.Now()})
}

// Undrain gives a drained backend its vhosts back.
func Undrain(ctx context.Context, s Store, ip, by string) error {
	return s.UpdateHost(ctx, ip, func(h *HostRecord) error {
		if !h.Drained {
			return ErrUnchanged
		}
		h.VHosts, h.Drained, h.DrainedFrom, h.ChangedBy, h.ChangedAt = h.DrainedFrom, false, 0, by, time.Now()
		return nil
	})
}

// DrainProgress is what a drain reports while it waits.
type DrainProgress struct {
	Host       string        `json:"host"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	Sessions   int           `json:"sessions"`   // relayed sessions on the host, all gateways
	Deliveries int           `json:"deliveries"` // LMTP deliveries (and logins) in flight to it
	Users      int           `json:"users"`      // live assignments to it
	Gateways   int           `json:"gateways"`
	Kicked     bool          `json:"kicked"`
	Done       bool          `json:"done"`
}

// ErrDrainTimeout: the host still serves someone when the drain's time
// is up; it stays drained.
var ErrDrainTimeout = errors.New("director: drain timed out; the host stays drained")

// DrainOptions tune Drain.
type DrainOptions struct {
	// KickAfter, when positive, moves the remaining users away (safely)
	// once this long has passed; zero only waits.
	KickAfter time.Duration
	// Timeout, when positive, ends the wait with ErrDrainTimeout.
	Timeout time.Duration
	// Progress is called at every look (about twice a second).
	Progress func(DrainProgress)
}

// gatewayReportLag bounds how old a gateway's report may be and still
// count: gateways report when their load changes and at least every five
// seconds.
const gatewayReportLag = 15 * time.Second

// Drain takes a backend out of service the safe way (the seed memo's
// seven steps as one call): no new users (vhosts 0, the old count
// remembered for Undrain); existing users stay until their sessions end,
// or, after KickAfter, are moved away safely; it returns once no gateway
// has a session on the host nor a delivery in flight to it. Run again
// (after a gateway died mid-way, say), it goes on where it was.
func Drain(ctx context.Context, s Store, ip string, o DrainOptions, by string) error {
	if err := s.UpdateHost(ctx, ip, func(h *HostRecord) error {
		if h.Drained {
			return ErrUnchanged // a drain run again goes on
		}
		h.Drained, h.DrainedFrom, h.VHosts, h.ChangedBy, h.ChangedAt = true, h.VHosts, 0, by, time.Now()
		return nil
	}); err != nil {
		return err
	}
	start := time.Now()
	kicked, flushed := false, false
	var zeroSince time.Time // the first look of the current empty streak
	for {
		look := time.Now()
		p := DrainProgress{Host: ip, Elapsed: time.Since(start), Kicked: kicked}
		loads, err := s.Gateways(ctx)
		if err != nil {
			return err
		}
		fresh := true // every gateway reported after the streak began
		for _, g := range loads {
			if time.Since(g.At) > gatewayReportLag {
				continue // a report left by a gateway that is going away
			}
			p.Gateways++
			p.Sessions += g.Sessions[ip]
			p.Deliveries += g.Deliveries[ip]
			if !zeroSince.IsZero() && !g.At.After(zeroSince) {
				fresh = false
			}
		}
		now := time.Now()
		if err := s.Range(ctx, func(_ string, a Assignment) bool {
			if a.Backend == ip && a.Expires.After(now) {
				p.Users++
			}
			return true
		}); err != nil {
			return err
		}
		// Empty only when every gateway has said so since the streak
		// began: a report may be up to a publishing period old.
		if p.Sessions > 0 || p.Deliveries > 0 {
			zeroSince = time.Time{}
		} else if zeroSince.IsZero() {
			zeroSince = look
		} else if fresh {
			if p.Users > 0 && !flushed {
				// Nobody is on the host, but some users are still
				// assigned to it and would log in there: send them to
				// the ring (no session to end).
				flushed = true
				if err := Flush(ctx, s, ip, by); err != nil {
					return err
				}
				zeroSince = time.Time{}
				continue
			}
			p.Done = true
		}
		if o.Progress != nil {
			o.Progress(p)
		}
		if p.Done {
			return nil
		}
		if o.KickAfter > 0 && !kicked && time.Since(start) >= o.KickAfter {
			kicked = true
			if err := Flush(ctx, s, ip, by); err != nil {
				return err
			}
			continue
		}
		if o.Timeout > 0 && time.Since(start) >= o.Timeout {
			return ErrDrainTimeout
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Flush sends a backend's users back to the ring (Dovecot's safe
// "director flush"): their sessions end everywhere first.
func Flush(ctx context.Context, s Store, ip, by string) error {
	if _, err := findHost(ctx, s, ip); err != nil {
		return err
	}
	return s.Move(ctx, Move{ID: NewMoveID(), Backend: ip, Reason: "flush", By: by, At: time.Now()})
}

// ErrLastHost: the last backend cannot be removed.
var ErrLastHost = errors.New("director: the last backend cannot be removed")

// RemoveHost moves a backend's users away and forgets the backend.
func RemoveHost(ctx context.Context, s Store, ip, by string) error {
	hosts, err := s.Hosts(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, h := range hosts {
		found = found || h.IP == ip
	}
	if !found {
		return fmt.Errorf("%w: %s", ErrNotFound, ip)
	}
	if len(hosts) == 1 {
		return ErrLastHost
	}
	return s.Move(ctx, Move{ID: NewMoveID(), Backend: ip, Reason: "remove", By: by, At: time.Now(), RemoveHost: true})
}

// MoveUser ends key's sessions everywhere and assigns it to backend for
// userExpire.
// A drained backend (vhosts 0) may take a chosen user this way: a test
// account, while nobody else lands there.
func MoveUser(ctx context.Context, s Store, key, backend string, userExpire time.Duration, by string) error {
	h, err := findHost(ctx, s, backend)
	if err != nil {
		return err
	}
	if h.Down {
		return fmt.Errorf("director: %s is down", backend)
	}
	return s.Move(ctx, Move{ID: NewMoveID(), Key: key, To: backend, Until: time.Now().Add(userExpire), Reason: "move", By: by, At: time.Now()})
}
