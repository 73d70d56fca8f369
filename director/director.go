// SPDX-License-Identifier: Apache-2.0

package director

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
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

// flushEvery is how long a refresh may wait to be written with others: a
// login or logout costs no store write of its own.
const flushEvery = time.Second

// Config configures a Director.
type Config struct {
	// Hosts are the configured backends: they seed an empty store, and
	// are the director's view until the store's hosts are known.
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
	seed   []Host

	mu      sync.Mutex
	hosts   map[string]HostRecord // by IP
	rings   map[string]*Ring      // by tag
	active  map[string]*activeUser
	holds   map[string]*hold // moves in progress, by ID
	fenced  bool
	joined  bool // the store admitted this gateway once (fencing is news)
	pending map[string]Refresh
	changed chan struct{} // closed and replaced whenever a lease ends
	events  []Event       // oldest first, at most maxEvents
	// fromStore: the hosts came from the store at least once.
	fromStore bool
	stats     Stats
}

// activeUser is this gateway's open sessions (and LMTP deliveries) of one
// user key; while there are any, the director keeps refreshing the
// assignment.
type activeUser struct {
	backend string
	leases  map[*Lease]struct{}
}

// hold keeps the users a move selects from logging in until it is done.
type hold struct {
	m    Move
	done chan struct{}
}

func (h *hold) selects(key, backend string) bool {
	if h.m.Key != "" {
		return h.m.Key == key
	}
	return h.m.Backend == backend
}

// New validates cfg and returns a Director. It does no I/O; Start joins
// the store.
func New(cfg Config) (*Director, error) {
	d := &Director{
		expire:  cfg.UserExpire,
		hashT:   cfg.UsernameHash,
		store:   cfg.Store,
		now:     cfg.Now,
		log:     cfg.Logger,
		seed:    cfg.Hosts,
		active:  map[string]*activeUser{},
		holds:   map[string]*hold{},
		pending: map[string]Refresh{},
		changed: make(chan struct{}),
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
	recs := make([]HostRecord, len(cfg.Hosts))
	for i, h := range cfg.Hosts {
		recs[i] = HostRecord{Host: h}
	}
	d.setHosts(recs, false)
	d.store.Attach(d)
	return d, nil
}

// Start joins the store: it seeds an empty one with the configured hosts,
// loads the stored hosts (the truth from then on) and logs how they differ
// from the configuration.
func (d *Director) Start(ctx context.Context, by string) error {
	if err := d.store.Start(ctx, d.seed, by); err != nil {
		return err
	}
	for _, diff := range HostDiff(d.seed, d.Hosts()) {
		d.log.Warn("director: the configuration's backends differ from the store's, which win", "difference", diff)
	}
	return nil
}

// HostDiff describes how configured backends differ from stored ones, a
// line per host.
func HostDiff(configured []Host, stored []HostRecord) []string {
	cfg := map[string]Host{}
	for _, h := range configured {
		cfg[h.IP] = h
	}
	var out []string
	for _, s := range stored {
		c, ok := cfg[s.IP]
		delete(cfg, s.IP)
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s is in the store (changed by %s at %s) but not in the configuration", s.IP, orUnknown(s.ChangedBy), s.ChangedAt.Format(time.RFC3339)))
		case c.Tag != s.Tag || c.VHosts != s.VHosts || c.Down != s.Down:
			out = append(out, fmt.Sprintf("%s: configured %s, stored %s (changed by %s at %s)", s.IP, c, s.Host, orUnknown(s.ChangedBy), s.ChangedAt.Format(time.RFC3339)))
		}
	}
	for ip := range cfg {
		out = append(out, fmt.Sprintf("%s is configured but not in the store (removed at runtime?)", ip))
	}
	sort.Strings(out)
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// HostsChanged implements Cluster.
func (d *Director) HostsChanged(hosts []HostRecord) {
	d.mu.Lock()
	defer d.mu.Unlock()
	first := !d.fromStore
	d.fromStore = true
	d.setHosts(hosts, !first)
}

// setHosts replaces the known backends; news says whether the change is
// news to report as events (not the configuration's hosts replaced by
// the store's on the first load).
func (d *Director) setHosts(hosts []HostRecord, news bool) {
	byTag := map[string][]Host{}
	before := d.hosts
	d.hosts = make(map[string]HostRecord, len(hosts))
	for _, h := range hosts {
		d.hosts[h.IP] = h
		byTag[h.Tag] = append(byTag[h.Tag], h.Host)
	}
	if news {
		d.hostEventsLocked(before, d.hosts)
	}
	d.rings = make(map[string]*Ring, len(byTag))
	for tag, hs := range byTag {
		d.rings[tag] = NewRing(hs)
	}
}

// Hosts returns the backends as this gateway knows them, by IP.
func (d *Director) Hosts() []HostRecord {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]HostRecord, 0, len(d.hosts))
	for _, h := range d.hosts {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}

// UserExpire returns how long an assignment outlives the user's last session.
func (d *Director) UserExpire() time.Duration { return d.expire }

// HashKey returns the string the ring hashes for user: the expansion of
// username_hash ("%Lu": the lower-cased user name).
func (d *Director) HashKey(user string) (string, error) {
	return auth.Expand(d.hashT, (&auth.Request{User: user}).Vars(), nil)
}

// StoreKey returns the store key of user in backend group tag.
func (d *Director) StoreKey(user, tag string) (string, error) {
	hk, err := d.HashKey(user)
	if err != nil {
		return "", err
	}
	return storeKey(tag, hk), nil
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

	mu     sync.Mutex
	kick   func()
	kicked bool
}

// OnKick sets how the session is ended when its user is moved or this
// gateway is fenced (closing the client and backend connections). A lease
// without it (an LMTP delivery) is waited for instead. If the lease was
// kicked already, kick runs at once.
func (l *Lease) OnKick(kick func()) {
	l.mu.Lock()
	l.kick = kick
	kicked := l.kicked
	l.mu.Unlock()
	if kicked && kick != nil {
		kick()
	}
}

func (l *Lease) doKick() {
	l.mu.Lock()
	l.kicked = true
	kick := l.kick
	l.mu.Unlock()
	if kick != nil {
		kick()
	}
}

// kickDelay is how long a move waits after ending sessions before the
// users may log in elsewhere: backend processes can outlive the proxied
// connection for a moment (Dovecot's director_user_kick_delay).
const kickDelay = 2 * time.Second

// storeTimeout bounds one login's wait for the store: a store that cannot
// answer in this time is down, and the login fails temporarily.
const storeTimeout = 5 * time.Second

// Acquire returns the backend user must be served by, in backend group tag,
// and holds the assignment until the lease is released. While a move
// selects the user, it waits for the move to end. Errors are classified: a
// store that cannot answer, a fenced gateway or a group without usable
// hosts is a temporary failure.
func (d *Director) Acquire(ctx context.Context, user, tag string) (*Lease, error) {
	hk, err := d.HashKey(user)
	if err != nil {
		return nil, auth.Internal("director", err)
	}
	key := storeKey(tag, hk)
	for {
		d.mu.Lock()
		if d.fenced {
			d.mu.Unlock()
			return nil, auth.Temporary("director", ErrFenced)
		}
		if h := d.holdLocked(key, ""); h != nil {
			d.mu.Unlock()
			if err := d.waitHold(ctx, h); err != nil {
				return nil, err
			}
			continue
		}
		ring := d.rings[tag]
		hosts := d.hosts
		d.mu.Unlock()

		var proposed string
		if ring != nil {
			proposed, _ = ring.Lookup(UserHash(hk))
		}
		sctx, cancel := context.WithTimeout(ctx, storeTimeout)
		a, created, err := d.claim(sctx, key, proposed, d.now(), hosts)
		cancel()
		if err != nil {
			return nil, err
		}

		d.mu.Lock()
		if d.fenced {
			d.mu.Unlock()
			return nil, auth.Temporary("director", ErrFenced)
		}
		// A move that began while the store answered selects this user:
		// it may not have seen this lease, so wait and claim again.
		if h := d.holdLocked(key, a.Backend); h != nil {
			d.mu.Unlock()
			if err := d.waitHold(ctx, h); err != nil {
				return nil, err
			}
			continue
		}
		au := d.active[key]
		if au == nil || au.backend != a.Backend {
			if au != nil {
				// The user moved while older sessions lived on: they are
				// on the wrong backend now. (A move kicks them first;
				// this catches an assignment replaced behind our back.)
				for l := range au.leases {
					go l.doKick()
				}
			}
			au = &activeUser{backend: a.Backend, leases: map[*Lease]struct{}{}}
			d.active[key] = au
			// The first local session: make sure the store's expiry
			// covers it (a sticky claim may not have extended it).
			d.pending[key] = Refresh{Key: key, Backend: a.Backend, Until: d.now().Add(d.expire)}
		}
		reason := Sticky
		if created {
			reason = Hashed
		}
		l := &Lease{Backend: a.Backend, Reason: reason, d: d, key: key}
		au.leases[l] = struct{}{}
		d.mu.Unlock()
		if created {
			d.log.Debug("director: user placed", "user", user, "backend", a.Backend, "tag", tag)
		}
		return l, nil
	}
}

// holdLocked returns a move in progress that selects key (on backend, when
// given).
func (d *Director) holdLocked(key, backend string) *hold {
	for _, h := range d.holds {
		if h.m.Key == key || (backend != "" && h.m.Key == "" && h.m.Backend == backend) {
			return h
		}
	}
	return nil
}

// noHoldWait marks a context whose Acquire must not wait for a move.
type noHoldWait struct{}

// WithoutHoldWait returns a context under which Acquire fails at once,
// temporarily, for a user a move holds, instead of waiting for the move.
// A caller that already holds leases must use it (an LMTP transaction with
// accepted recipients): the move may be waiting for those very leases.
func WithoutHoldWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, noHoldWait{}, true)
}

func (d *Director) waitHold(ctx context.Context, h *hold) error {
	if ctx.Value(noHoldWait{}) != nil {
		return auth.Temporary("director", fmt.Errorf("user is being moved (%s of %s)", h.m.Reason, h.m.Backend+h.m.Key))
	}
	select {
	case <-h.done:
		return nil
	case <-ctx.Done():
		return auth.Temporary("director", fmt.Errorf("user is being moved (%s of %s): %w", h.m.Reason, h.m.Backend+h.m.Key, ctx.Err()))
	}
}

// claim asks the store for key's assignment, proposing the ring's choice.
// An assignment naming a backend that is no longer known is dropped and
// claimed again.
func (d *Director) claim(ctx context.Context, key, proposed string, now time.Time, hosts map[string]HostRecord) (Assignment, bool, error) {
	until := now.Add(d.expire)
	for attempt := 0; attempt < 2; attempt++ {
		if proposed == "" {
			// Nothing to place on: only a live assignment to a known host
			// can still be honoured.
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
// gateway, the assignment is refreshed (with the next batch) to expire
// user_expire from now. Release is idempotent.
func (l *Lease) Release() {
	l.once.Do(func() {
		d := l.d
		d.mu.Lock()
		defer d.mu.Unlock()
		au := d.active[l.key]
		if au == nil {
			return
		}
		if _, ok := au.leases[l]; !ok {
			return
		}
		delete(au.leases, l)
		if len(au.leases) == 0 {
			delete(d.active, l.key)
			if !d.fenced {
				d.pending[l.key] = Refresh{Key: l.key, Backend: au.backend, Until: d.now().Add(d.expire)}
			}
		}
		close(d.changed)
		d.changed = make(chan struct{})
	})
}

// Evict implements Cluster: it holds new logins of the users m selects,
// ends this gateway's sessions of them and waits until none is left.
func (d *Director) Evict(ctx context.Context, m Move) error {
	d.mu.Lock()
	if _, ok := d.holds[m.ID]; !ok {
		d.holds[m.ID] = &hold{m: m, done: make(chan struct{})}
		d.stats.Moves++
		d.moveEventLocked(m)
	}
	h := d.holds[m.ID]
	victims := d.selectedLocked(h)
	d.stats.SessionsKicked += uint64(len(victims))
	d.mu.Unlock()
	if len(victims) > 0 {
		d.log.Info("director: ending sessions for a move", "move", m.ID, "reason", m.Reason, "backend", m.Backend, "key", m.Key, "sessions", len(victims))
	}
	for _, l := range victims {
		l.doKick()
	}
	for {
		d.mu.Lock()
		left := len(d.selectedLocked(h))
		changed := d.changed
		d.mu.Unlock()
		if left == 0 {
			if len(victims) == 0 {
				return nil
			}
			select {
			case <-time.After(kickDelay):
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("director: %d sessions of move %s still open: %w", left, m.ID, ctx.Err())
		}
	}
}

func (d *Director) selectedLocked(h *hold) []*Lease {
	var out []*Lease
	for key, au := range d.active {
		if h.selects(key, au.backend) {
			for l := range au.leases {
				out = append(out, l)
			}
		}
	}
	return out
}

// MoveEnded implements Cluster.
func (d *Director) MoveEnded(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if h, ok := d.holds[id]; ok {
		delete(d.holds, id)
		close(h.done)
	}
}

// Fenced implements Cluster. A fenced gateway may have missed a move or a
// reassignment, so it serves nobody: its sessions end (clients reconnect
// and are answered with a temporary failure until the store is back).
func (d *Director) Fenced(fenced bool) {
	d.mu.Lock()
	was := d.fenced
	d.fenced = fenced
	var victims []*Lease
	if fenced {
		for _, au := range d.active {
			for l := range au.leases {
				victims = append(victims, l)
			}
		}
		clear(d.pending)
	}
	joined := d.joined
	if !fenced {
		d.joined = true
	}
	switch {
	case fenced && !was && joined:
		d.stats.Fencings++
		d.stats.SessionsKicked += uint64(len(victims))
		d.eventLocked("fence", "", "fenced off the store: %d sessions ended, logins refused", len(victims))
	case !fenced && was && joined:
		d.eventLocked("fence", "", "back on the store: admitting logins")
	}
	d.mu.Unlock()
	switch {
	case fenced && !was && joined:
		d.log.Error("director: fenced off the cluster store; ending sessions and refusing logins until it is back", "sessions", len(victims))
	case !fenced && was && joined:
		d.log.Info("director: the cluster store is back; admitting logins")
	}
	for _, l := range victims {
		l.doKick()
	}
}

// Load implements Cluster: per backend, the relayed sessions (leases
// that can be kicked), the deliveries and logins in flight (leases that
// cannot yet), and the users with either.
func (d *Director) Load() GatewayLoad {
	g := GatewayLoad{Sessions: map[string]int{}, Deliveries: map[string]int{}, Users: map[string]int{}, At: time.Now()}
	d.mu.Lock()
	g.Fenced = d.fenced
	for _, au := range d.active {
		g.Users[au.backend]++
		for l := range au.leases {
			l.mu.Lock()
			session := l.kick != nil
			l.mu.Unlock()
			if session {
				g.Sessions[au.backend]++
			} else {
				g.Deliveries[au.backend]++
			}
		}
	}
	d.mu.Unlock()
	return g
}

// UserLoad implements Cluster.
func (d *Director) UserLoad(key string) UserLoad {
	var u UserLoad
	d.mu.Lock()
	au := d.active[key]
	if au != nil {
		u.Backend = au.backend
		for l := range au.leases {
			l.mu.Lock()
			if l.kick != nil {
				u.Sessions++
			} else {
				u.Deliveries++
			}
			l.mu.Unlock()
		}
	}
	d.mu.Unlock()
	return u
}

// IsFenced says whether the gateway is fenced off the store.
func (d *Director) IsFenced() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fenced
}

// Run writes batched refreshes and keeps the assignments of users with
// open sessions alive until ctx is done (Dovecot's proxy_refresh, every
// user_expire/2; we refresh a little more often so that one slow round
// cannot let an assignment lapse).
func (d *Director) Run(ctx context.Context) {
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	active := time.NewTicker(d.expire / 3)
	defer active.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			d.Flush(ctx)
		case <-active.C:
			d.refreshActive(ctx)
		}
	}
}

func (d *Director) refreshActive(ctx context.Context) {
	d.mu.Lock()
	until := d.now().Add(d.expire)
	for k, au := range d.active {
		d.pending[k] = Refresh{Key: k, Backend: au.backend, Until: until}
	}
	d.mu.Unlock()
	d.Flush(ctx)
}

// Flush writes the refreshes waiting for the next batch. A key whose
// assignment turned out to name another backend has its sessions here
// ended: they are on the wrong backend.
func (d *Director) Flush(ctx context.Context) {
	d.mu.Lock()
	if len(d.pending) == 0 || d.fenced {
		d.mu.Unlock()
		return
	}
	batch := make([]Refresh, 0, len(d.pending))
	for _, r := range d.pending {
		batch = append(batch, r)
	}
	clear(d.pending)
	d.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, storeTimeout)
	lost, err := d.store.Refresh(sctx, batch)
	cancel()
	if err != nil {
		d.log.Warn("director: refreshing assignments failed", "keys", len(batch), "reason", err)
		// Try again with the next batch, unless newer ones replaced them.
		d.mu.Lock()
		for _, r := range batch {
			if _, ok := d.pending[r.Key]; !ok {
				d.pending[r.Key] = r
			}
		}
		d.mu.Unlock()
	}
	if len(lost) == 0 {
		return
	}
	d.mu.Lock()
	var victims []*Lease
	for _, k := range lost {
		for _, r := range batch {
			if r.Key != k {
				continue
			}
			if au := d.active[k]; au != nil && au.backend == r.Backend {
				for l := range au.leases {
					victims = append(victims, l)
				}
			}
		}
	}
	d.mu.Unlock()
	if len(victims) > 0 {
		d.log.Warn("director: assignments moved under open sessions; ending them", "keys", len(lost), "sessions", len(victims))
	}
	for _, l := range victims {
		l.doKick()
	}
}

// ActiveUsers returns how many user keys have open sessions on this gateway.
func (d *Director) ActiveUsers() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.active)
}

// Store returns the director's store.
func (d *Director) Store() Store { return d.store }
