// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"

	"github.com/maildirector/maildirector/auth"
)

// HashLimit bounds how many costly stored-password checks run at once
// (password.Costly; a salted digest takes microseconds and never queues
// behind them). Costly
// schemes are costly on purpose: one ARGON2ID check holds its m (64 MiB by
// Dovecot's default) for the whole check, one BLF-CRYPT keeps a core busy
// for a good fraction of a second. A burst of logins — an attack, or every
// client of a site reconnecting after a restart — must queue for the
// cores instead of running all at once and exhausting memory. Dovecot gets
// the same effect from its single-threaded auth process and bounded
// auth-worker pool.
//
// Waiting counts against the request's context: a login that cannot get a
// slot before its deadline is a temporary failure, never a wrong password.
type HashLimit struct {
	slots chan struct{}
}

// NewHashLimit allows n checks at once (n < 1 means 1).
func NewHashLimit(n int) *HashLimit {
	return &HashLimit{slots: make(chan struct{}, max(n, 1))}
}

// acquire waits for a slot; the returned func gives it back. A nil limit
// does not limit.
func (l *HashLimit) acquire(ctx context.Context) (release func(), err error) {
	if l == nil {
		return func() {}, nil
	}
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, nil
	default:
	}
	select {
	case l.slots <- struct{}{}:
		return func() { <-l.slots }, nil
	case <-ctx.Done():
		return nil, auth.Temporary("passdb: waiting to check a password", ctx.Err())
	}
}
