// SPDX-License-Identifier: Apache-2.0

package director

import (
	"context"
	"time"
)

// Assignment is a user's current backend and until when it holds without
// a session refreshing it.
type Assignment struct {
	Backend string // host IP
	Expires time.Time
}

// Store keeps assignments, keyed by the director's user key (the expanded
// username_hash, with the backend group in front when there is one).
// Implementations shared by several gateways must make Claim atomic
// (compare-and-set): two gateways claiming one key at once get one answer.
type Store interface {
	// Claim returns key's assignment if it is live at now, extending its
	// expiry to at least proposed.Expires; otherwise it stores proposed and
	// returns it with created set.
	Claim(ctx context.Context, key string, proposed Assignment, now time.Time) (a Assignment, created bool, err error)
	// Refresh extends key's expiry to until, if key is still assigned to
	// backend. It is not an error when key has gone or moved meanwhile.
	Refresh(ctx context.Context, key, backend string, until time.Time) error
	// Get returns key's assignment, live or not.
	Get(ctx context.Context, key string) (Assignment, bool, error)
	// Delete forgets key's assignment.
	Delete(ctx context.Context, key string) error
	// Range calls fn for every stored assignment until fn returns false.
	Range(ctx context.Context, fn func(key string, a Assignment) bool) error
}
