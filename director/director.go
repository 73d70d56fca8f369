// SPDX-License-Identifier: Apache-2.0

package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/maildirector/maildirector/auth"
)

// Defaults and bounds from Dovecot 2.3 (src/director/director-settings.c).
const (
	DefaultUserExpire   = 15 * time.Minute
	MinUserExpire       = 10 * time.Second
	DefaultUsernameHash = "%Lu"
)

// Config configures a Director.
type Config struct {
	Hosts        []Host
	UserExpire   time.Duration // 0: DefaultUserExpire
	UsernameHash string        // "": DefaultUsernameHash
	Store        Store
	Now          func() time.Time // nil: time.Now
	Logger       *slog.Logger     // nil: slog.Default()
}

// Reason says why a user was sent to a backend.
type Reason string

const (
	// Sticky: the user already had a live assignment.
	Sticky Reason = "sticky"
	// Hashed: the user had none and the ring placed it.
	Hashed Reason = "hashed"
)

// Director assigns users to backends. It is safe for concurrent use.
type Director struct {
	expire time.Duration
	hashT  string
	store  Store
	now    func() time.Time
	log    *slog.Logger

	mu     sync.Mutex
	hosts  map[string]Host  // by IP
	rings  map[string]*Ring // by tag
	active map[string]*activeUser
}

// activeUser counts this gateway's open sessions of one user key; while
// there are any, the director keeps refreshing the assignment.
type activeUser struct {
	backend string
	n       int
}

// New validates cfg and returns a Director. It does no I/O.
func New(cfg Config) (*Director, error) {
	d := &Director{
		expire: cfg.UserExpire,
		hashT:  cfg.UsernameHash,
		store:  cfg.Store,
		now:    cfg.Now,
		log:    cfg.Logger,
		active: map[string]*activeUser{},
	}
	if d.expire == 0 {
		d.expire = DefaultUserExpire
	}
	if d.expire < MinUserExpire {
		return nil, fmt.Errorf("director: user_expire %v is below the minimum %v", d.expire, MinUserExpire)
	}
	if d.hashT == "" {
		d.hashT = DefaultUsernameHash
	}
	if _, err := auth.Expand(d.hashT, (&auth.Request{}).Vars(), nil); err != nil {
		return nil, fmt.Errorf("director: username_hash: %w", err)
	}
	if d.store == nil {
		return nil, errors.New("director: no store")
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	for _, h := range cfg.Hosts {
		if strings.Contains(h.Tag, "/") {
			return nil, fmt.Errorf("director: tag %q may not contain '/'", h.Tag)
		}
	}
	d.setHosts(cfg.Hosts)
	return d, nil
}

func (d *Director) setHosts(hosts []Host) {
	byTag := map[string][]Host{}
	d.hosts = make(map[string]Host, len(hosts))
	for _, h := range hosts {
		d.hosts[h.IP] = h
		byTag[h.Tag] = append(byTag[h.Tag], h)
	}
	d.rings = make(map[string]*Ring, len(byTag))
	for tag, hs := range byTag {
		d.rings[tag] = NewRing(hs)
	}
}

// Hosts returns the configured backends.
func (d *Director) Hosts() []Host {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Host, 0, len(d.hosts))
	for _, h := range d.hosts {
		out = append(out, h)
	}
	return out
}

// UserExpire returns how long an assignment outlives the user's last session.
func (d *Director) UserExpire() time.Duration { return d.expire }

// HashKey returns the string the ring hashes for user: the expansion of
// username_hash ("%Lu": the lower-cased user name).
func (d *Director) HashKey(user string) (string, error) {
	return auth.Expand(d.hashT, (&auth.Request{User: user}).Vars(), nil)
}

// Hashed returns the backend the ring names for user in tag, ignoring any
// assignment; ok is false when the group has no usable host.
func (d *Director) Hashed(user, tag string) (ip string, ok bool, err error) {
	hk, err := d.HashKey(user)
	if err != nil {
		return "", false, auth.Internal("director", err)
	}
	d.mu.Lock()
	ring := d.rings[tag]
	d.mu.Unlock()
	if ring == nil {
		return "", false, nil
	}
	ip, ok = ring.Lookup(UserHash(hk))
	return ip, ok, nil
}

func storeKey(tag, hashKey string) string { return tag + "/" + hashKey }

// Lease is one session's hold on a user's assignment. Release it when the
// session ends; the assignment then lives on for user_expire.
type Lease struct {
	Backend string // IP of the backend the user must use
	Reason  Reason

	d    *Director
	key  string
	once sync.Once
}

// Acquire returns the backend user must be served by, in backend group tag,
// and holds the assignment until the lease is released. Errors are
// classified: a store that cannot answer or a group without usable hosts is
// a temporary failure.
func (d *Director) Acquire(ctx context.Context, user, tag string) (*Lease, error) {
	hk, err := d.HashKey(user)
	if err != nil {
		return nil, auth.Internal("director", err)
	}
	key := storeKey(tag, hk)
	now := d.now()

	d.mu.Lock()
	ring := d.rings[tag]
	hosts := d.hosts
	d.mu.Unlock()

	var proposed string
	if ring != nil {
		proposed, _ = ring.Lookup(UserHash(hk))
	}
	a, created, err := d.claim(ctx, key, proposed, now, hosts)
	if err != nil {
		return nil, err
	}
	reason := Sticky
	if created {
		reason = Hashed
		d.log.Debug("director: user placed", "user", user, "backend", a.Backend, "tag", tag)
	}

	d.mu.Lock()
	au := d.active[key]
	if au == nil || au.backend != a.Backend {
		au = &activeUser{backend: a.Backend}
		d.active[key] = au
	}
	au.n++
	d.mu.Unlock()
	return &Lease{Backend: a.Backend, Reason: reason, d: d, key: key}, nil
}

// claim asks the store for key's assignment, proposing the ring's choice.
// An assignment naming a backend that is no longer configured is dropped
// and claimed again.
func (d *Director) claim(ctx context.Context, key, proposed string, now time.Time, hosts map[string]Host) (Assignment, bool, error) {
	until := now.Add(d.expire)
	for attempt := 0; attempt < 2; attempt++ {
		if proposed == "" {
			// Nothing to place on: only a live assignment to a configured
			// host can still be honoured.
			a, ok, err := d.store.Get(ctx, key)
			if err != nil {
				return Assignment{}, false, auth.Temporary("director: store", err)
			}
			if ok && a.Expires.After(now) {
				if _, known := hosts[a.Backend]; known {
					return a, false, nil
				}
			}
			return Assignment{}, false, auth.Temporary("director", errors.New("no usable backend"))
		}
		a, created, err := d.store.Claim(ctx, key, Assignment{Backend: proposed, Expires: until}, now)
		if err != nil {
			return Assignment{}, false, auth.Temporary("director: store", err)
		}
		if _, known := hosts[a.Backend]; known {
			return a, created, nil
		}
		d.log.Info("director: forgetting assignment to a removed backend", "key", key, "backend", a.Backend)
		if err := d.store.Delete(ctx, key); err != nil {
			return Assignment{}, false, auth.Temporary("director: store", err)
		}
	}
	return Assignment{}, false, auth.Temporary("director", errors.New("assignment keeps naming a removed backend"))
}

// Release ends the lease. When it was the user's last session on this
// gateway, the assignment is refreshed to expire user_expire from now.
// Release is idempotent.
func (l *Lease) Release() {
	l.once.Do(func() {
		d := l.d
		d.mu.Lock()
		au := d.active[l.key]
		last := false
		if au != nil && au.backend == l.Backend {
			au.n--
			if au.n <= 0 {
				delete(d.active, l.key)
				last = true
			}
		}
		d.mu.Unlock()
		if last {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := d.store.Refresh(ctx, l.key, l.Backend, d.now().Add(d.expire)); err != nil {
				d.log.Warn("director: refresh on release failed", "key", l.key, "reason", err)
			}
		}
	})
}

// Run refreshes the assignments of users with open sessions until ctx is
// done, so that they never expire under a live session (Dovecot's
// proxy_refresh, every user_expire/2; we refresh a little more often so
// that one slow round cannot let an assignment lapse).
func (d *Director) Run(ctx context.Context) {
	t := time.NewTicker(d.expire / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.refreshActive(ctx)
		}
	}
}

func (d *Director) refreshActive(ctx context.Context) {
	d.mu.Lock()
	batch := make(map[string]string, len(d.active))
	for k, au := range d.active {
		batch[k] = au.backend
	}
	d.mu.Unlock()
	until := d.now().Add(d.expire)
	for k, backend := range batch {
		if err := d.store.Refresh(ctx, k, backend, until); err != nil {
			d.log.Warn("director: refresh failed", "key", k, "reason", err)
		}
	}
}

// ActiveUsers returns how many user keys have open sessions on this gateway.
func (d *Director) ActiveUsers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.active)
}
