// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/maildirector/maildirector/director"
)

// fakeOps is an Ops in memory that records the changes asked of it.
type fakeOps struct {
	mu         sync.Mutex
	hosts      map[string]director.HostRecord
	users      map[string]director.Assignment
	configured []director.Host
	calls      []string
	fail       error // every store call fails with it
	block      chan struct{}
}

var testNow = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

func newFakeOps(specs ...string) *fakeOps {
	hosts, err := director.ParseHosts(specs)
	if err != nil {
		panic(err)
	}
	f := &fakeOps{hosts: map[string]director.HostRecord{}, users: map[string]director.Assignment{}, configured: hosts}
	for _, h := range hosts {
		f.hosts[h.IP] = director.HostRecord{Host: h, ChangedBy: "seed", ChangedAt: testNow.Add(-time.Hour)}
	}
	return f
}

func (f *fakeOps) assign(user, ip string, expires time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users["/"+strings.ToLower(user)] = director.Assignment{Backend: ip, Expires: expires}
}

func (f *fakeOps) record(format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
	return f.fail
}

func (f *fakeOps) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeOps) Hosts(ctx context.Context) ([]director.HostRecord, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	var out []director.HostRecord
	for _, h := range f.hosts {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out, nil
}

func (f *fakeOps) Range(ctx context.Context, fn func(string, director.Assignment) bool) error {
	f.mu.Lock()
	if f.fail != nil {
		f.mu.Unlock()
		return f.fail
	}
	keys := make([]string, 0, len(f.users))
	for k := range f.users {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	users := map[string]director.Assignment{}
	for k, v := range f.users {
		users[k] = v
	}
	f.mu.Unlock()
	for _, k := range keys {
		if !fn(k, users[k]) {
			break
		}
	}
	return nil
}

func (f *fakeOps) Get(ctx context.Context, key string) (director.Assignment, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return director.Assignment{}, false, f.fail
	}
	a, ok := f.users[key]
	return a, ok, nil
}

func (f *fakeOps) Gateways(ctx context.Context) ([]Gateway, error) {
	return []Gateway{
		{Name: "gw1", Self: true, Sessions: map[string]int{"127.0.0.11": 2}},
		{Name: "gw2", Fenced: true, Sessions: map[string]int{"127.0.0.11": 1, "127.0.0.12": 4}},
	}, nil
}

func (f *fakeOps) StoreKey(user, tag string) (string, error) {
	if strings.Contains(user, "%") {
		return "", errors.New("unknown variable")
	}
	return tag + "/" + strings.ToLower(user), nil
}

func (f *fakeOps) ConfiguredHosts() []director.Host { return f.configured }

func (f *fakeOps) AddHost(ctx context.Context, h director.Host, by string) error {
	if err := f.record("add %s by %s", h, by); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.hosts[h.IP]
	h.Down = old.Down
	f.hosts[h.IP] = director.HostRecord{Host: h, ChangedBy: by, ChangedAt: testNow}
	return nil
}

func (f *fakeOps) change(ip string, fn func(*director.HostRecord)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hosts[ip]
	if !ok {
		return fmt.Errorf("%w: %s", director.ErrNotFound, ip)
	}
	fn(&h)
	f.hosts[ip] = h
	return nil
}

func (f *fakeOps) SetVHosts(ctx context.Context, ip string, vhosts int, by string) error {
	if err := f.record("update %s %d by %s", ip, vhosts, by); err != nil {
		return err
	}
	return f.change(ip, func(h *director.HostRecord) { h.VHosts = vhosts })
}

func (f *fakeOps) HostUp(ctx context.Context, ip, by string) error {
	if err := f.record("up %s by %s", ip, by); err != nil {
		return err
	}
	return f.change(ip, func(h *director.HostRecord) { h.Down = false })
}

func (f *fakeOps) HostDown(ctx context.Context, ip, by string) error {
	if err := f.record("down %s by %s", ip, by); err != nil {
		return err
	}
	if f.block != nil {
		select {
		case <-f.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return f.change(ip, func(h *director.HostRecord) { h.Down = true })
}

func (f *fakeOps) Flush(ctx context.Context, ip, by string) error {
	if err := f.record("flush %s by %s", ip, by); err != nil {
		return err
	}
	return f.change(ip, func(*director.HostRecord) {})
}

func (f *fakeOps) RemoveHost(ctx context.Context, ip, by string) error {
	if err := f.record("remove %s by %s", ip, by); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.hosts, ip)
	return nil
}

func (f *fakeOps) MoveUser(ctx context.Context, key, ip, by string) error {
	if err := f.record("move %s %s by %s", key, ip, by); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.users[key] = director.Assignment{Backend: ip, Expires: testNow.Add(15 * time.Minute)}
	return nil
}

func (f *fakeOps) Kick(ctx context.Context, key, by string) error {
	return f.record("kick %s by %s", key, by)
}

func (f *fakeOps) Drain(ctx context.Context, ip string, o DrainOptions, by string) error {
	return f.record("drain %s %v %v by %s", ip, o.KickAfter, o.Timeout, by)
}

func (f *fakeOps) Undrain(ctx context.Context, ip, by string) error {
	return f.record("undrain %s by %s", ip, by)
}
