// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"context"
	"errors"
	"time"

	"github.com/maildirector/maildirector/director"
)

// Ops is what the admin doors need from the director. Every change acts
// cluster-wide, through the director store, and records who asked (by).
type Ops interface {
	// Hosts returns the backends as stored.
	Hosts(ctx context.Context) ([]director.HostRecord, error)
	// Range calls fn for every stored assignment (live or not) until fn
	// returns false.
	Range(ctx context.Context, fn func(key string, a director.Assignment) bool) error
	// Get returns one user key's assignment, live or not.
	Get(ctx context.Context, key string) (director.Assignment, bool, error)
	// Gateways lists the gateways sharing the store, this one included.
	Gateways(ctx context.Context) ([]Gateway, error)

	// StoreKey returns the store key of user in backend group tag.
	StoreKey(user, tag string) (string, error)
	// ConfiguredHosts are the configuration file's backends (Dovecot's
	// "initial config"): the ones that seeded the store.
	ConfiguredHosts() []director.Host

	// AddHost adds a backend (or sets an existing one's vhost count).
	AddHost(ctx context.Context, h director.Host, by string) error
	// SetVHosts changes a backend's vhost count; nobody moves.
	SetVHosts(ctx context.Context, ip string, vhosts int, by string) error
	// HostUp lets a backend take new users again.
	HostUp(ctx context.Context, ip, by string) error
	// HostDown marks a backend down and moves its users away safely.
	HostDown(ctx context.Context, ip, by string) error
	// Flush sends a backend's users back to the ring, safely: their
	// sessions end on every gateway first.
	Flush(ctx context.Context, ip, by string) error
	// RemoveHost moves a backend's users away and forgets the backend.
	RemoveHost(ctx context.Context, ip, by string) error
	// MoveUser ends key's sessions everywhere and assigns it to ip.
	MoveUser(ctx context.Context, key, ip, by string) error
	// Kick ends key's sessions on every gateway; the user keeps its
	// backend.
	Kick(ctx context.Context, key, by string) error
	// Drain stops new users for ip (vhosts 0, the weight remembered) and
	// waits until no gateway has a session on it nor a delivery to it;
	// Undrain restores the remembered weight.
	Drain(ctx context.Context, ip string, o DrainOptions, by string) error
	Undrain(ctx context.Context, ip, by string) error
}

// Gateway is one gateway sharing the director store, as it last
// reported itself.
type Gateway struct {
	ID   string `json:"id,omitempty"`
	Name string `json:"name"`
	// Self: the gateway answering.
	Self bool `json:"self"`
	// Fenced: cut off the store (it admits nobody).
	Fenced bool `json:"fenced"`
	// Sessions (relayed), Deliveries (LMTP, in flight) and Users (with
	// either), per backend IP; nil when not known.
	Sessions   map[string]int `json:"sessions,omitempty"`
	Deliveries map[string]int `json:"deliveries,omitempty"`
	Users      map[string]int `json:"users,omitempty"`
	// At is when the gateway reported this.
	At time.Time `json:"at,omitzero"`
}

// DrainOptions tune a drain (director.DrainOptions).
type DrainOptions struct {
	// KickAfter, when positive, moves the remaining users away (safely)
	// once this long has passed; zero only waits for their sessions to end.
	KickAfter time.Duration
	// Timeout, when positive, ends the wait with ErrDrainTimeout; the host
	// stays drained.
	Timeout time.Duration
}

// ErrDrainTimeout: the host still serves someone when the drain's time
// is up; it stays drained.
var ErrDrainTimeout = director.ErrDrainTimeout

// ErrNotImplemented: the director does not offer this operation yet.
var ErrNotImplemented = errors.New("not implemented yet")

// DirectorOps implements Ops with the director package's cluster-wide
// operations, on the store of one gateway's Director.
type DirectorOps struct {
	D *director.Director
	// Configured are the configuration file's backends.
	Configured []director.Host
	// Name is this gateway's name in the store.
	Name string
	// Username turns a name given to the admin doors into the name logins
	// of that user are known by (auth.default_realm, auth.username_format)
	// before the director hashes it; nil leaves names as they are.
	Username func(string) (string, error)
}

var _ Ops = (*DirectorOps)(nil)

func (o *DirectorOps) store() director.Store { return o.D.Store() }

// Hosts implements Ops.
func (o *DirectorOps) Hosts(ctx context.Context) ([]director.HostRecord, error) {
	return o.store().Hosts(ctx)
}

// Range implements Ops.
func (o *DirectorOps) Range(ctx context.Context, fn func(string, director.Assignment) bool) error {
	return o.store().Range(ctx, fn)
}

// Get implements Ops.
func (o *DirectorOps) Get(ctx context.Context, key string) (director.Assignment, bool, error) {
	return o.store().Get(ctx, key)
}

// Gateways implements Ops: what each live gateway reported to the store.
func (o *DirectorOps) Gateways(ctx context.Context) ([]Gateway, error) {
	loads, err := o.store().Gateways(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Gateway, len(loads))
	for i, g := range loads {
		out[i] = Gateway{ID: g.ID, Name: g.Name, Self: g.Name == o.Name, Fenced: g.Fenced,
			Sessions: g.Sessions, Deliveries: g.Deliveries, Users: g.Users, At: g.At}
	}
	return out, nil
}

// StoreKey implements Ops.
func (o *DirectorOps) StoreKey(user, tag string) (string, error) {
	if o.Username != nil {
		var err error
		if user, err = o.Username(user); err != nil {
			return "", err
		}
	}
	return o.D.StoreKey(user, tag)
}

// ConfiguredHosts implements Ops.
func (o *DirectorOps) ConfiguredHosts() []director.Host { return o.Configured }

// AddHost implements Ops.
func (o *DirectorOps) AddHost(ctx context.Context, h director.Host, by string) error {
	return director.AddHost(ctx, o.store(), h, by)
}

// SetVHosts implements Ops.
func (o *DirectorOps) SetVHosts(ctx context.Context, ip string, vhosts int, by string) error {
	return director.SetVHosts(ctx, o.store(), ip, vhosts, by)
}

// HostUp implements Ops.
func (o *DirectorOps) HostUp(ctx context.Context, ip, by string) error {
	return director.HostUp(ctx, o.store(), ip, by)
}

// HostDown implements Ops.
func (o *DirectorOps) HostDown(ctx context.Context, ip, by string) error {
	return director.HostDown(ctx, o.store(), ip, by)
}

// Flush implements Ops.
func (o *DirectorOps) Flush(ctx context.Context, ip, by string) error {
	return director.Flush(ctx, o.store(), ip, by)
}

// RemoveHost implements Ops.
func (o *DirectorOps) RemoveHost(ctx context.Context, ip, by string) error {
	return director.RemoveHost(ctx, o.store(), ip, by)
}

// MoveUser implements Ops.
func (o *DirectorOps) MoveUser(ctx context.Context, key, ip, by string) error {
	return director.MoveUser(ctx, o.store(), key, ip, o.D.UserExpire(), by)
}

// Kick implements Ops.
func (o *DirectorOps) Kick(ctx context.Context, key, by string) error {
	return director.Kick(ctx, o.store(), key, by)
}

// Drain implements Ops.
func (o *DirectorOps) Drain(ctx context.Context, ip string, opts DrainOptions, by string) error {
	return director.Drain(ctx, o.store(), ip, director.DrainOptions{KickAfter: opts.KickAfter, Timeout: opts.Timeout}, by)
}

// Undrain implements Ops.
func (o *DirectorOps) Undrain(ctx context.Context, ip, by string) error {
	return director.Undrain(ctx, o.store(), ip, by)
}
