// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"context"
	"time"

	"github.com/maildirector/maildirector/director"
)

// Store wraps s so that every request the director makes of it is timed
// and counted (maildirector_director_store_request_duration_seconds):
// with etcd, these are the round trips a login or an operation waits
// for. Attach, Start, Close and Lead pass through untimed (Lead lasts as
// long as the lead, no request's time); Move is timed as a whole (a move
// waits for every gateway).
func (m *Metrics) Store(s director.Store) director.Store { return &timedStore{Store: s, m: m} }

type timedStore struct {
	director.Store
	m *Metrics
}

func (t *timedStore) observe(op string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	t.m.storeOps.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}

func (t *timedStore) Hosts(ctx context.Context) ([]director.HostRecord, error) {
	start := time.Now()
	hs, err := t.Store.Hosts(ctx)
	t.observe("hosts", start, err)
	return hs, err
}

func (t *timedStore) PutHost(ctx context.Context, h director.HostRecord) error {
	start := time.Now()
	err := t.Store.PutHost(ctx, h)
	t.observe("put_host", start, err)
	return err
}

func (t *timedStore) UpdateHost(ctx context.Context, ip string, fn func(h *director.HostRecord) error) error {
	start := time.Now()
	err := t.Store.UpdateHost(ctx, ip, fn)
	t.observe("update_host", start, err)
	return err
}

func (t *timedStore) Claim(ctx context.Context, key string, proposed director.Assignment, now time.Time) (director.Assignment, bool, error) {
	start := time.Now()
	a, created, err := t.Store.Claim(ctx, key, proposed, now)
	t.observe("claim", start, err)
	return a, created, err
}

func (t *timedStore) Refresh(ctx context.Context, items []director.Refresh) ([]string, error) {
	start := time.Now()
	lost, err := t.Store.Refresh(ctx, items)
	t.observe("refresh", start, err)
	return lost, err
}

func (t *timedStore) Get(ctx context.Context, key string) (director.Assignment, bool, error) {
	start := time.Now()
	a, ok, err := t.Store.Get(ctx, key)
	t.observe("get", start, err)
	return a, ok, err
}

func (t *timedStore) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := t.Store.Delete(ctx, key)
	t.observe("delete", start, err)
	return err
}

func (t *timedStore) Range(ctx context.Context, fn func(key string, a director.Assignment) bool) error {
	start := time.Now()
	err := t.Store.Range(ctx, fn)
	t.observe("range", start, err)
	return err
}

func (t *timedStore) Move(ctx context.Context, mv director.Move) error {
	start := time.Now()
	err := t.Store.Move(ctx, mv)
	t.observe("move", start, err)
	return err
}

func (t *timedStore) Gateways(ctx context.Context) ([]director.GatewayLoad, error) {
	start := time.Now()
	g, err := t.Store.Gateways(ctx)
	t.observe("gateways", start, err)
	return g, err
}

func (t *timedStore) Who(ctx context.Context, key string) ([]director.UserLoad, error) {
	start := time.Now()
	u, err := t.Store.Who(ctx, key)
	t.observe("who", start, err)
	return u, err
}
