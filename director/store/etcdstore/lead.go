// SPDX-License-Identifier: Apache-2.0

package etcdstore

import (
	"context"
	"errors"
	"math"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// leadRetry is the pause between two campaigns of one election.
const leadRetry = time.Second

// Lead runs fn while this gateway leads the election name (keys under the
// prefix's elections/<name>/, one per candidate, held by a lease of
// lease_ttl): one gateway of the cluster at a time. fn's context is
// cancelled as soon as leadership may be lost: the lease lapsed or was
// revoked, the candidate key went, or the etcd member lost its own leader.
// Lead then campaigns again; it returns ctx's error when ctx ends, after
// resigning (the next candidate leads at once, not after the lease).
func (s *Store) Lead(ctx context.Context, name string, fn func(ctx context.Context)) error {
	for {
		err := s.leadOnce(ctx, name, fn)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			s.log.Warn("etcd: election: campaigning again", "election", name, "reason", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(leadRetry):
		}
	}
}

// leadOnce campaigns once and, once elected, runs fn until leadership or
// ctx ends.
func (s *Store) leadOnce(ctx context.Context, name string, fn func(ctx context.Context)) error {
	ttl := int64(math.Ceil(s.cfg.LeaseTTL.Seconds()))
	gctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout+s.cfg.LeaseTTL)
	grant, err := s.cli.Grant(gctx, ttl)
	cancel()
	if err != nil {
		return err
	}
	// The session's keep-alive must outlive ctx until we revoke: a lease
	// left to expire would hand leadership over a lease_ttl late.
	sess, err := concurrency.NewSession(s.cli, concurrency.WithLease(grant.ID), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		s.revoke(grant.ID)
		return err
	}
	defer func() {
		sess.Orphan()
		s.revoke(grant.ID) // deletes the candidate key with it
	}()

	cctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		select {
		case <-sess.Done():
			stop(errors.New("the election's lease lapsed"))
		case <-cctx.Done():
		}
	}()
	e := concurrency.NewElection(sess, s.pfx+"elections/"+name)
	// Campaign may block in its own clean-up when etcd cannot be reached
	// (it resigns with the client's context): wait for it only while
	// campaigning makes sense.
	done := make(chan error, 1)
	go func() { done <- e.Campaign(cctx, s.cfg.Name) }()
	select {
	case err = <-done:
	case <-cctx.Done():
		return context.Cause(cctx)
	}
	if err != nil {
		return err
	}
	if cctx.Err() != nil {
		return context.Cause(cctx)
	}

	// Elected. Leadership lasts while the candidate key does and the
	// member we talk to has a leader itself.
	lctx, lost := context.WithCancelCause(cctx)
	defer lost(nil)
	wch := s.cli.Watch(clientv3.WithRequireLeader(lctx), e.Key(), clientv3.WithRev(e.Rev()+1))
	go func() {
		for {
			select {
			case <-lctx.Done():
				return
			case <-sess.Done():
				lost(errors.New("election lease lapsed"))
				return
			case wr, ok := <-wch:
				if !ok || wr.Canceled || wr.Err() != nil {
					err := errors.New("watch ended")
					if wr.Err() != nil {
						err = wr.Err()
					}
					lost(err)
					return
				}
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypeDelete {
						lost(errors.New("election key deleted"))
						return
					}
				}
			}
		}
	}()
	s.log.Debug("etcd: election won", "election", name, "key", e.Key())
	fn(lctx)
	return nil
}

func (s *Store) revoke(id clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.cli.Revoke(ctx, id)
}
