// SPDX-License-Identifier: Apache-2.0

// Package memory is an in-memory director.Store for a single gateway.
// Assignments are lost on restart, which only costs stickiness: users are
// placed by the ring again, on the same backends unless hosts changed.
//
// It may import director only.
package memory

import (
	"context"
	"sync"
	"time"

	"github.com/maildirector/maildirector/director"
)

// sweepEvery bounds how often Claim looks for expired entries to drop.
const sweepEvery = time.Minute

// Store is a director.Store in a map. It is safe for concurrent use.
type Store struct {
	mu        sync.Mutex
	m         map[string]director.Assignment
	lastSweep time.Time
}

// New returns an empty Store.
func New() *Store { return &Store{m: map[string]director.Assignment{}} }

// Claim implements director.Store.
func (s *Store) Claim(_ context.Context, key string, proposed director.Assignment, now time.Time) (director.Assignment, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.lastSweep) > sweepEvery {
		s.sweep(now)
	}
	if a, ok := s.m[key]; ok && a.Expires.After(now) {
		if proposed.Expires.After(a.Expires) {
			a.Expires = proposed.Expires
			s.m[key] = a
		}
		return a, false, nil
	}
	s.m[key] = proposed
	return proposed, true, nil
}

// sweep drops expired entries so that the map does not grow with every
// user ever seen.
func (s *Store) sweep(now time.Time) {
	for k, a := range s.m {
		if !a.Expires.After(now) {
			delete(s.m, k)
		}
	}
	s.lastSweep = now
}

// Refresh implements director.Store.
func (s *Store) Refresh(_ context.Context, key, backend string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.m[key]; ok && a.Backend == backend && until.After(a.Expires) {
		a.Expires = until
		s.m[key] = a
	}
	return nil
}

// Get implements director.Store.
func (s *Store) Get(_ context.Context, key string) (director.Assignment, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.m[key]
	return a, ok, nil
}

// Delete implements director.Store.
func (s *Store) Delete(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// Range implements director.Store. fn runs without the lock held, on a
// snapshot, so it may call back into the store.
func (s *Store) Range(_ context.Context, fn func(string, director.Assignment) bool) error {
	s.mu.Lock()
	snap := make(map[string]director.Assignment, len(s.m))
	for k, a := range s.m {
		snap[k] = a
	}
	s.mu.Unlock()
	for k, a := range snap {
		if !fn(k, a) {
			break
		}
	}
	return nil
}
