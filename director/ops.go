// SPDX-License-Identifier: Apache-2.0

package director

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
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
	h, err := findHost(ctx, s, ip)
	if err != nil {
		return err
	}
	h.VHosts, h.ChangedBy, h.ChangedAt = vhosts, by, time.Now()
	return s.PutHost(ctx, h)
}

// AddHost adds a backend, or changes its vhost count if it exists (the
// tag of an existing host cannot change, as in Dovecot).
func AddHost(ctx context.Context, s Store, h Host, by string) error {
	old, err := findHost(ctx, s, h.IP)
	if err == nil && old.Tag != h.Tag {
		return fmt.Errorf("host %s has tag %q; a tag cannot be changed", h.IP, old.Tag)
	}
	if err == nil {
		h.Down = old.Down
	}
	return s.PutHost(ctx, HostRecord{Host: h, ChangedBy: by, ChangedAt: time.Now()})
}

// HostUp lets a backend take new users again.
func HostUp(ctx context.Context, s Store, ip, by string) error {
	h, err := findHost(ctx, s, ip)
	if err != nil {
		return err
	}
	if !h.Down {
		return nil
	}
	h.Down, h.ChangedBy, h.ChangedAt = false, by, time.Now()
	return s.PutHost(ctx, h)
}

// HostDown marks a backend down and moves its users away, safely: their
// sessions end on every gateway before any of them is placed elsewhere.
func HostDown(ctx context.Context, s Store, ip, by string) error {
	h, err := findHost(ctx, s, ip)
	if err != nil {
		return err
	}
	h.Down, h.ChangedBy, h.ChangedAt = true, by, time.Now()
	return s.Move(ctx, Move{ID: NewMoveID(), Backend: ip, Reason: "down", By: by, At: time.Now(), Host: &h})
}

// Flush sends a backend's users back to the ring (Dovecot's safe
// "director flush"): their sessions end everywhere first.
func Flush(ctx context.Context, s Store, ip, by string) error {
	if _, err := findHost(ctx, s, ip); err != nil {
		return err
	}
	return s.Move(ctx, Move{ID: NewMoveID(), Backend: ip, Reason: "flush", By: by, At: time.Now()})
}

// RemoveHost moves a backend's users away and forgets the backend.
func RemoveHost(ctx context.Context, s Store, ip, by string) error {
	if _, err := findHost(ctx, s, ip); err != nil {
		return err
	}
	return s.Move(ctx, Move{ID: NewMoveID(), Backend: ip, Reason: "remove", By: by, At: time.Now(), RemoveHost: true})
}

// MoveUser ends key's sessions everywhere and assigns it to backend for
// userExpire.
func MoveUser(ctx context.Context, s Store, key, backend string, userExpire time.Duration, by string) error {
	if _, err := findHost(ctx, s, backend); err != nil {
		return err
	}
	return s.Move(ctx, Move{ID: NewMoveID(), Key: key, To: backend, Until: time.Now().Add(userExpire), Reason: "move", By: by, At: time.Now()})
}
