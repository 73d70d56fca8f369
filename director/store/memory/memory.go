// SPDX-License-Identifier: Apache-2.0

// Package memory is an in-memory director.Store for a single gateway (and
// for tests, which may attach several directors to one store as if they
// were gateways of one cluster). Nothing is persisted: host changes made
// at runtime are lost on restart, and users are placed by the ring again.
//
// It may import director only.
package memory

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/maildirector/maildirector/director"
)

// sweepEvery bounds how often Claim looks for expired entries to drop.
const sweepEvery = time.Minute

// Store is a director.Store in maps. It is safe for concurrent use.
type Store struct {
	mu        sync.Mutex
	m         map[string]director.Assignment
	hosts     map[string]director.HostRecord
	seeded    bool
	lastSweep time.Time
	clusters  []director.Cluster

	moveMu sync.Mutex // one move at a time, as one store step
}

// New returns an empty Store.
func New() *Store {
	return &Store{m: map[string]director.Assignment{}, hosts: map[string]director.HostRecord{}}
}

// Attach implements director.Store; several directors may attach.
func (s *Store) Attach(c director.Cluster) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clusters = append(s.clusters, c)
}

// Start implements director.Store: the first Start seeds the hosts.
func (s *Store) Start(_ context.Context, seed []director.Host, by string) error {
	s.mu.Lock()
	if !s.seeded {
		s.seeded = true
		now := time.Now()
		for _, h := range seed {
			s.hosts[h.IP] = director.HostRecord{Host: h, ChangedBy: by, ChangedAt: now}
		}
	}
	s.mu.Unlock()
	s.announce()
	return nil
}

// Close implements director.Store.
func (s *Store) Close() error { return nil }

func (s *Store) hostList() []director.HostRecord {
	out := make([]director.HostRecord, 0, len(s.hosts))
	for _, h := range s.hosts {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}

// announce tells every attached director the hosts.
func (s *Store) announce() {
	s.mu.Lock()
	hosts, cs := s.hostList(), append([]director.Cluster(nil), s.clusters...)
	s.mu.Unlock()
	for _, c := range cs {
		c.HostsChanged(hosts)
	}
}

// Hosts implements director.Store.
func (s *Store) Hosts(context.Context) ([]director.HostRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostList(), nil
}

// PutHost implements director.Store.
func (s *Store) PutHost(_ context.Context, h director.HostRecord) error {
	s.mu.Lock()
	s.seeded = true
	s.hosts[h.IP] = h
	s.mu.Unlock()
	s.announce()
	return nil
}

// UpdateHost implements director.Store.
func (s *Store) UpdateHost(_ context.Context, ip string, fn func(*director.HostRecord) error) error {
	s.mu.Lock()
	h, ok := s.hosts[ip]
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s", director.ErrNotFound, ip)
	}
	err := fn(&h)
	if err == nil {
		s.hosts[ip] = h
	}
	s.mu.Unlock()
	if errors.Is(err, director.ErrUnchanged) {
		return nil
	}
	if err == nil {
		s.announce()
	}
	return err
}

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
func (s *Store) Refresh(_ context.Context, items []director.Refresh) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var lost []string
	for _, r := range items {
		a, ok := s.m[r.Key]
		if !ok || a.Backend != r.Backend {
			lost = append(lost, r.Key)
			continue
		}
		if r.Until.After(a.Expires) {
			a.Expires = r.Until
			s.m[r.Key] = a
		}
	}
	return lost, nil
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

// Move implements director.Store: every attached director ends the
// selected sessions, then the assignments change, then the hold lifts.
func (s *Store) Move(ctx context.Context, m director.Move) error {
	s.moveMu.Lock()
	defer s.moveMu.Unlock()
	s.mu.Lock()
	if m.Host != nil {
		s.hosts[m.Host.IP] = *m.Host
	}
	cs := append([]director.Cluster(nil), s.clusters...)
	s.mu.Unlock()
	if m.Host != nil {
		s.announce()
	}
	end := func() {
		for _, c := range cs {
			c.MoveEnded(m.ID)
		}
	}
	// Every gateway ends its sessions at once, as they would in a cluster.
	errs := make(chan error, len(cs))
	for _, c := range cs {
		go func() { errs <- c.Evict(ctx, m) }()
	}
	var firstErr error
	for range cs {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if firstErr != nil {
		end()
		return firstErr
	}
	s.mu.Lock()
	switch {
	case m.Keep:
	case m.Key != "" && m.To != "":
		s.m[m.Key] = director.Assignment{Backend: m.To, Expires: m.Until}
	case m.Key != "":
		delete(s.m, m.Key)
	default:
		for k, a := range s.m {
			if a.Backend == m.Backend {
				delete(s.m, k)
			}
		}
		if m.RemoveHost {
			delete(s.hosts, m.Backend)
		}
	}
	s.mu.Unlock()
	if m.RemoveHost {
		s.announce()
	}
	end()
	return nil
}

// Gateways implements director.Store: every attached director.
func (s *Store) Gateways(context.Context) ([]director.GatewayLoad, error) {
	s.mu.Lock()
	cs := append([]director.Cluster(nil), s.clusters...)
	s.mu.Unlock()
	out := make([]director.GatewayLoad, len(cs))
	for i, c := range cs {
		out[i] = c.Load()
		out[i].ID = strconv.Itoa(i)
		if out[i].Name == "" {
			out[i].Name = "local"
		}
	}
	return out, nil
}

// Who implements director.Store: every attached director answers.
func (s *Store) Who(_ context.Context, key string) ([]director.UserLoad, error) {
	s.mu.Lock()
	cs := append([]director.Cluster(nil), s.clusters...)
	s.mu.Unlock()
	out := make([]director.UserLoad, len(cs))
	for i, c := range cs {
		out[i] = c.UserLoad(key)
		out[i].Gateway = "local"
		if len(cs) > 1 {
			out[i].Gateway = "local" + strconv.Itoa(i)
		}
	}
	return out, nil
}
