// SPDX-License-Identifier: Apache-2.0

package director

import (
	"context"
	"errors"
	"time"
)

// Assignment is a user's current backend and until when it holds without
// a session refreshing it.
type Assignment struct {
	Backend string // host IP
	Expires time.Time
}

// HostRecord is a backend as the store keeps it: what the ring needs, and
// who changed it last, when.
type HostRecord struct {
	Host
	ChangedBy string    `json:"changed_by,omitempty"`
	ChangedAt time.Time `json:"changed_at"`
	// Drained: the host takes no new users (VHosts 0) until undrained,
	// which restores DrainedFrom.
	Drained     bool `json:"drained,omitempty"`
	DrainedFrom int  `json:"drained_from,omitempty"`
	// DownBy says who took a down host down: DownByOperator or
	// DownByHealth. Health checks bring up only hosts they took down.
	DownBy string `json:"down_by,omitempty"`
	// Health holds the last health transitions, newest last.
	Health []HealthEvent `json:"health,omitempty"`
}

// Who took a host down.
const (
	DownByOperator = "operator"
	DownByHealth   = "health"
)

// HealthEvent is one health transition of a host.
type HealthEvent struct {
	At     time.Time `json:"at"`
	Up     bool      `json:"up"`
	Reason string    `json:"reason,omitempty"`
}

// maxHealthEvents bounds a host's stored health history.
const maxHealthEvents = 10

// GatewayLoad is what one gateway serves, per backend IP, as it reports it
// to the others through the store.
type GatewayLoad struct {
	ID         string         `json:"id"`
	Name       string         `json:"name"`
	Sessions   map[string]int `json:"sessions,omitempty"`   // relayed sessions
	Deliveries map[string]int `json:"deliveries,omitempty"` // LMTP deliveries (and logins) in flight
	Users      map[string]int `json:"users,omitempty"`      // users with either
	Fenced     bool           `json:"fenced,omitempty"`
	At         time.Time      `json:"at"`
}

// Move ends the sessions of some users on every gateway, then changes
// their assignments, as one step every gateway sees: Dovecot's USER-MOVE /
// HOST-RESET-USERS without its ring. It selects either every user assigned
// to Backend (a host down, flushed or removed) or the one user Key.
type Move struct {
	ID      string    `json:"id"`
	Backend string    `json:"backend,omitempty"` // host move: users assigned here
	Key     string    `json:"key,omitempty"`     // user move: this store key
	To      string    `json:"to,omitempty"`      // user move: new backend ("": the ring decides)
	Until   time.Time `json:"until,omitempty"`   // user move: the new assignment's expiry
	Reason  string    `json:"reason"`            // down, flush, remove, move
	By      string    `json:"by,omitempty"`
	At      time.Time `json:"at"`
	// Host, when set, is written in the same step as the move record
	// (host down: the host's new state); RemoveHost deletes Backend's
	// record instead.
	Host       *HostRecord `json:"host,omitempty"`
	RemoveHost bool        `json:"remove_host,omitempty"`
	// Keep leaves the assignment as it is: the move only ends the
	// sessions (a kick).
	Keep bool `json:"keep,omitempty"`
}

// Refresh asks for Key's assignment to Backend to last until Until.
type Refresh struct {
	Key     string
	Backend string
	Until   time.Time
}

// Store keeps the director's shared state: the backends and the users'
// assignments, keyed by the director's user key (the expanded
// username_hash, with the backend group in front). Implementations shared
// by several gateways make Claim a compare-and-set (two gateways claiming
// one key at once get one answer) and carry Moves out on every gateway.
type Store interface {
	// Attach tells the store which director acts on its events (host
	// changes, moves, fencing). It is called once, before Start.
	Attach(Cluster)
	// Start loads the state and begins following changes. hosts seed a
	// store that has never held any; the store's hosts are the truth
	// afterwards. It returns once the director has its hosts.
	Start(ctx context.Context, seed []Host, by string) error
	// Close stops following changes and leaves the cluster.
	Close() error

	// Hosts returns the backends as stored.
	Hosts(ctx context.Context) ([]HostRecord, error)
	// PutHost creates or changes a backend. Nobody moves: a new vhost
	// count or an up host changes where new users go only.
	PutHost(ctx context.Context, h HostRecord) error
	// UpdateHost changes backend ip with fn, atomically: a change made by
	// someone else meanwhile makes it read and call fn again, so that no
	// update is lost. fn returning ErrUnchanged writes nothing; another
	// error is returned as it is. A missing host is ErrNotFound.
	UpdateHost(ctx context.Context, ip string, fn func(h *HostRecord) error) error

	// Claim returns key's assignment if it is live at now, extending its
	// expiry towards proposed.Expires; otherwise it stores proposed and
	// returns it with created set.
	Claim(ctx context.Context, key string, proposed Assignment, now time.Time) (a Assignment, created bool, err error)
	// Refresh extends assignments (refreshes of keys that moved or went
	// are skipped) and returns the keys whose assignment no longer names
	// the backend asked for: this gateway must not serve them there.
	Refresh(ctx context.Context, items []Refresh) (lost []string, err error)
	// Get returns key's assignment, live or not.
	Get(ctx context.Context, key string) (Assignment, bool, error)
	// Delete forgets key's assignment.
	Delete(ctx context.Context, key string) error
	// Range calls fn for every stored assignment until fn returns false.
	Range(ctx context.Context, fn func(key string, a Assignment) bool) error

	// Move carries m out cluster-wide and returns once it is done: every
	// gateway ended the selected users' sessions (or was fenced out), and
	// their assignments were changed.
	Move(ctx context.Context, m Move) error

	// Gateways returns what each live gateway reported it serves.
	Gateways(ctx context.Context) ([]GatewayLoad, error)
	// Who asks every live gateway what it serves of key right now.
	Who(ctx context.Context, key string) ([]UserLoad, error)
	// Lead runs fn while this gateway leads the election name (one
	// gateway of the cluster at a time), cancelling fn's context when the
	// lead is lost, and campaigns again; it returns when ctx ends.
	Lead(ctx context.Context, name string, fn func(ctx context.Context)) error
}

// Cluster is what a store needs from the director of its gateway.
type Cluster interface {
	// HostsChanged gives the stored backends after any change.
	HostsChanged(hosts []HostRecord)
	// Evict holds new logins of the users m selects, ends this gateway's
	// sessions of them and waits until none is left (LMTP deliveries
	// finish). The hold lasts until MoveEnded.
	Evict(ctx context.Context, m Move) error
	// MoveEnded lifts m's hold: the assignments have been changed.
	MoveEnded(id string)
	// Fenced says whether this gateway's knowledge may be stale (its
	// lease on the cluster lapsed): while fenced it ends its sessions and
	// admits nobody.
	Fenced(fenced bool)
	// Load reports what this gateway serves.
	Load() GatewayLoad
	// UserLoad reports what this gateway serves of key.
	UserLoad(key string) UserLoad
}

// UserLoad is what one gateway serves of one user.
type UserLoad struct {
	Gateway    string `json:"gateway"`
	Backend    string `json:"backend,omitempty"`
	Sessions   int    `json:"sessions"`
	Deliveries int    `json:"deliveries"`
}

// ErrFenced is returned while a gateway cannot vouch for what it knows.
var ErrFenced = errors.New("director: this gateway is fenced off the cluster store")

// ErrUnchanged, from an UpdateHost function, writes nothing.
var ErrUnchanged = errors.New("director: nothing to change")

// ErrNotFound: no such host.
var ErrNotFound = errors.New("director: no such host")
