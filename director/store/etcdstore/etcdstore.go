// SPDX-License-Identifier: Apache-2.0

// Package etcdstore is the director.Store that several gateways share: an
// etcd v3 cluster (external, or the members the gateways embed) holds the
// backends and the assignments, and carries moves out.
//
// Why it is safe (ARCHITECTURE decision 5):
//   - Assignments are created with compare-and-set (create if absent,
//     replace an expired one only at the revision read), so two gateways
//     never place one user on two backends.
//   - Every gateway mirrors the store through a watch, so a sticky login
//     whose assignment has plenty of life left costs no round trip. That
//     answer can only be wrong if the assignment changed, which needs a
//     move (and a move needs this gateway's acknowledgement, or its lease
//     to lapse), or an expiry (the fast path keeps a margin for clocks).
//   - Each gateway holds an etcd lease. Its knowledge counts only while
//     the lease surely lives: measured from the moment the last successful
//     keep-alive was sent, so the gateway gives up (fences itself) before
//     etcd can expire the lease and let a move go on without it.
//   - A move is a record every gateway sees. Each ends the selected
//     sessions, waits for them, and acknowledges with a key under its
//     lease; once every live gateway has, any of them changes the
//     assignments and deletes the record, which lifts the holds.
//
// Keys under the prefix: hosts/<ip> (JSON), seeded, users/<tag>/<key>
// ("<backend> <expiry in unix ms>"), gateways/<lease> (JSON, leased),
// moves/<id> (JSON), acks/<id>/<lease> (leased).
//
// It may import director only (and etcd's client).
package etcdstore

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/maildirector/maildirector/director"
)

// Defaults.
const (
	DefaultPrefix      = "/maildirector/"
	DefaultDialTimeout = 5 * time.Second
	DefaultLeaseTTL    = 15 * time.Second
)

// maxBatch bounds the operations of one transaction (etcd's default
// --max-txn-ops is 128, and compares count too).
const maxBatch = 60

// Config configures a Store.
type Config struct {
	Endpoints   []string
	Prefix      string        // "": DefaultPrefix
	DialTimeout time.Duration // 0: DefaultDialTimeout
	TLS         *tls.Config   // client certificate and CA, or nil
	Username    string
	Password    string
	// LeaseTTL is how long a gateway's knowledge lasts without the store:
	// a gateway cut off longer is fenced (ends its sessions, admits
	// nobody); a dead gateway delays moves this long.
	LeaseTTL time.Duration // 0: DefaultLeaseTTL
	// UserExpire is the director's user_expire: it sizes the fast path's
	// margin and how often a refresh is worth a write.
	UserExpire time.Duration
	// Name describes this gateway to the others (status, logs).
	Name   string
	Logger *slog.Logger
	// Client, when set, is used instead of dialling Endpoints (the
	// embedded member hands over its own).
	Client *clientv3.Client
}

// Store is a director.Store on etcd. Without an attached director it is
// an observer (the command-line tools): no lease, no mirror, every call
// goes to etcd.
type Store struct {
	cfg     Config
	cli     *clientv3.Client
	ownCli  bool
	log     *slog.Logger
	pfx     string
	margin  time.Duration // a sticky fast path needs this much life left
	slack   time.Duration // a refresh within this of the stored expiry is skipped
	cluster director.Cluster

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	users map[string]entry
	// usersPeak is the most users the map has held since it was made: Go
	// maps keep the room of their largest size, so once the users fall
	// far below it the map is copied into one of the right size (the
	// mirror follows the users active now, not the morning's peak).
	usersPeak  int
	hosts      map[string]director.HostRecord
	moves      map[string]director.Move
	members    map[string]string // lease (hex) -> name
	lease      clientv3.LeaseID
	validUntil time.Time
	fenced     bool
	handled    map[string]clientv3.LeaseID // move ID -> lease it was acknowledged under
}

type entry struct {
	a   director.Assignment
	mod int64
}

// New connects to etcd (lazily: gRPC dials in the background) and
// returns a Store.
func New(cfg Config) (*Store, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < 2*time.Second {
		return nil, fmt.Errorf("etcd: lease_ttl %v is below 2s", cfg.LeaseTTL)
	}
	if cfg.UserExpire == 0 {
		cfg.UserExpire = director.DefaultUserExpire
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Name == "" {
		h, _ := os.Hostname()
		cfg.Name = fmt.Sprintf("%s/%d", h, os.Getpid())
	}
	s := &Store{
		cfg:     cfg,
		log:     cfg.Logger,
		pfx:     cfg.Prefix,
		margin:  min(max(cfg.UserExpire/10, 3*time.Second), 30*time.Second),
		slack:   cfg.UserExpire / 4,
		users:   map[string]entry{},
		hosts:   map[string]director.HostRecord{},
		moves:   map[string]director.Move{},
		members: map[string]string{},
		handled: map[string]clientv3.LeaseID{},
		fenced:  true,
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if cfg.Client != nil {
		s.cli = cfg.Client
		return s, nil
	}
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            cfg.Endpoints,
		DialTimeout:          cfg.DialTimeout,
		DialKeepAliveTime:    cfg.LeaseTTL / 3,
		DialKeepAliveTimeout: cfg.LeaseTTL / 3,
		TLS:                  cfg.TLS,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Logger:               zap.NewNop(),
		// Reads must be linearizable (the default): a placement read from
		// a member cut off from its quorum could be stale.
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	s.cli, s.ownCli = cli, true
	return s, nil
}

// Client returns the etcd client (for status and tests).
func (s *Store) Client() *clientv3.Client { return s.cli }

// Attach implements director.Store.
func (s *Store) Attach(c director.Cluster) { s.cluster = c }

func (s *Store) hostKey(ip string) string   { return s.pfx + "hosts/" + ip }
func (s *Store) userKey(key string) string  { return s.pfx + "users/" + key }
func (s *Store) moveKey(id string) string   { return s.pfx + "moves/" + id }
func (s *Store) ackPrefix(id string) string { return s.pfx + "acks/" + id + "/" }
func (s *Store) memberKey(l clientv3.LeaseID) string {
	return s.pfx + "gateways/" + strconv.FormatInt(int64(l), 16)
}

func encodeAssignment(a director.Assignment) string {
	return a.Backend + " " + strconv.FormatInt(a.Expires.UnixMilli(), 10)
}

func decodeAssignment(v []byte) (director.Assignment, bool) {
	b, e, ok := strings.Cut(string(v), " ")
	if !ok {
		return director.Assignment{}, false
	}
	ms, err := strconv.ParseInt(e, 10, 64)
	if err != nil {
		return director.Assignment{}, false
	}
	return director.Assignment{Backend: b, Expires: time.UnixMilli(ms)}, true
}

// Start implements director.Store: seeds, then (with a director attached)
// joins the cluster and follows it. A store that cannot be reached leaves
// the gateway fenced while it keeps trying.
func (s *Store) Start(ctx context.Context, seed []director.Host, by string) error {
	if err := s.seed(ctx, seed, by); err != nil {
		if s.cluster == nil {
			return err
		}
		s.log.Error("etcd: cannot reach the store; fenced until it answers", "reason", err)
	}
	if s.cluster == nil {
		return nil
	}
	s.cluster.Fenced(true)
	ready := make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(seed, by, ready)
	}()
	select {
	case <-ready:
	case <-ctx.Done():
	}
	return nil
}

// seed stores hosts if the store has never held any. The "seeded" marker
// keeps a store whose hosts were all removed at runtime from being seeded
// again.
func (s *Store) seed(ctx context.Context, seed []director.Host, by string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	now := time.Now()
	ops := []clientv3.Op{clientv3.OpPut(s.pfx+"seeded", now.UTC().Format(time.RFC3339))}
	var rest []clientv3.Op
	for _, h := range seed {
		b, _ := json.Marshal(director.HostRecord{Host: h, ChangedBy: by + " (seeded from the configuration)", ChangedAt: now})
		op := clientv3.OpPut(s.hostKey(h.IP), string(b))
		if len(ops) < maxBatch {
			ops = append(ops, op)
		} else {
			rest = append(rest, op)
		}
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.pfx+"seeded"), "=", 0)).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("etcd: seeding hosts: %w", err)
	}
	if !resp.Succeeded {
		return nil
	}
	for len(rest) > 0 {
		n := min(len(rest), maxBatch)
		if _, err := s.cli.Txn(ctx).Then(rest[:n]...).Commit(); err != nil {
			return fmt.Errorf("etcd: seeding hosts: %w", err)
		}
		rest = rest[n:]
	}
	s.log.Info("etcd: seeded the store with the configured backends", "hosts", len(seed))
	return nil
}

// run keeps a session with the cluster going: lease, membership, mirror,
// watch. A session that ends (lease lost, store unreachable) fences the
// gateway until the next one is up.
func (s *Store) run(seed []director.Host, by string, ready chan struct{}) {
	backoff := 200 * time.Millisecond
	first := true
	for s.ctx.Err() == nil {
		up := func() {
			if first {
				close(ready)
				first = false
			}
			backoff = 200 * time.Millisecond
		}
		err := s.session(seed, by, up)
		s.setFenced(true)
		if s.ctx.Err() != nil {
			return
		}
		s.log.Warn("etcd: lost the cluster store; fenced", "reason", err)
		if first {
			close(ready)
			first = false
		}
		select {
		case <-time.After(backoff):
		case <-s.ctx.Done():
			return
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Store) setFenced(f bool) {
	s.mu.Lock()
	was := s.fenced
	s.fenced = f
	s.mu.Unlock()
	// Closing (the gateway stops) is no fencing: its sessions end anyway.
	if was != f && s.ctx.Err() == nil {
		s.cluster.Fenced(f)
	}
}

// session runs one lease's life.
func (s *Store) session(seed []director.Host, by string, up func()) error {
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	if err := s.seed(ctx, seed, by); err != nil {
		return err
	}
	ttl := int64((s.cfg.LeaseTTL + time.Second - 1) / time.Second)
	t0 := time.Now()
	gctx, gcancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	g, err := s.cli.Grant(gctx, ttl)
	gcancel()
	if err != nil {
		return fmt.Errorf("lease: %w", err)
	}
	defer func() {
		// Fence first: revoking may wait for a store that is gone.
		s.setFenced(true)
		// Best effort: let the others stop waiting for this gateway now.
		rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
		s.cli.Revoke(rctx, g.ID)
		rcancel()
	}()
	s.mu.Lock()
	s.lease = g.ID
	s.validUntil = t0.Add(time.Duration(g.TTL) * time.Second)
	s.mu.Unlock()
	member, _ := json.Marshal(map[string]any{"name": s.cfg.Name, "since": time.Now().UTC()})
	pctx, pcancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	_, err = s.cli.Put(pctx, s.memberKey(g.ID), string(member), clientv3.WithLease(g.ID))
	pcancel()
	if err != nil {
		return fmt.Errorf("registering: %w", err)
	}

	errc := make(chan error, 3)
	go func() { errc <- s.keepAlive(ctx, g.ID, time.Duration(g.TTL)*time.Second) }()
	go func() { errc <- s.sweep(ctx, g.ID) }()
	go func() { errc <- s.publish(ctx, g.ID) }()
	go func() { errc <- s.follow(ctx, func() { s.setFenced(false); up() }) }()
	s.log.Info("etcd: joined the cluster store", "lease", fmt.Sprintf("%x", int64(g.ID)), "name", s.cfg.Name)
	return <-errc
}

// keepAlive renews the lease every third of its TTL. The lease is known
// to live until the send time of the last answered renewal plus the TTL;
// past that the session ends (the gateway fences itself).
func (s *Store) keepAlive(ctx context.Context, id clientv3.LeaseID, ttl time.Duration) error {
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	check := time.NewTicker(25 * time.Millisecond)
	// Give up a little before the lease can lapse: ending the sessions
	// takes a moment, and etcd may expire the lease the instant it is due.
	early := min(ttl/5, time.Second)
	defer check.Stop()
	type result struct {
		sent time.Time
		ttl  int64
		err  error
	}
	results := make(chan result, 1)
	inflight := false
	renew := func() {
		inflight = true
		sent := time.Now()
		go func() {
			rctx, cancel := context.WithTimeout(ctx, ttl/3)
			r, err := s.cli.KeepAliveOnce(rctx, id)
			cancel()
			var n int64
			if r != nil {
				n = r.TTL
			}
			results <- result{sent, n, err}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if !inflight {
				renew()
			}
		case r := <-results:
			inflight = false
			if errors.Is(r.err, rpctypes.ErrLeaseNotFound) {
				return errors.New("lease expired")
			}
			if r.err == nil && r.ttl > 0 {
				s.mu.Lock()
				if u := r.sent.Add(time.Duration(r.ttl) * time.Second); u.After(s.validUntil) {
					s.validUntil = u
				}
				s.mu.Unlock()
			}
		case <-check.C:
			s.mu.Lock()
			lapsed := time.Now().After(s.validUntil.Add(-early))
			s.mu.Unlock()
			if lapsed {
				return errors.New("lease not renewed in time")
			}
		}
	}
}

// follow loads the state and keeps the mirror current with a watch; after
// a broken watch (compaction) it loads again. up runs once the first load
// is done.
//
// A mirror that lags (a broken watch, a member without a leader) is still
// safe to serve from while the lease lives: a live assignment can only
// change through a move this gateway has not acknowledged, or through an
// expiry the fast path keeps a margin from. So only the lease fences.
func (s *Store) follow(ctx context.Context, up func()) error {
	for {
		rev, err := s.load(ctx)
		if err != nil {
			s.log.Warn("etcd: cannot load the state; trying again", "reason", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if up != nil {
			up()
			up = nil
		}
		err = s.watch(ctx, rev)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn("etcd: watch broken; loading the state again", "reason", err)
	}
}

// sweep deletes assignments that expired a while ago, so that the store
// does not grow with every user ever seen. Only the gateway with the
// lowest lease does it, once per user_expire.
func (s *Store) sweep(ctx context.Context, lease clientv3.LeaseID) error {
	every := max(s.cfg.UserExpire, time.Minute)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(every):
		}
		me := strconv.FormatInt(int64(lease), 16)
		s.mu.Lock()
		lowest := true
		for id := range s.members {
			if a, _ := strconv.ParseInt(id, 16, 64); a != 0 && a < int64(lease) {
				lowest = false
			}
		}
		s.mu.Unlock()
		if !lowest {
			continue
		}
		cutoff := time.Now().Add(-s.margin - s.slack)
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		n := 0
		flush := func() {
			if len(ops) > 0 {
				fctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
				s.cli.Txn(fctx).If(cmps...).Then(ops...).Commit()
				cancel()
			}
			cmps, ops = nil, nil
		}
		_, err := s.readPrefix(ctx, s.pfx+"users/", func(page []*mvccpb.KeyValue) bool {
			for _, kv := range page {
				if a, ok := decodeAssignment(kv.Value); ok && a.Expires.Before(cutoff) {
					cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
					ops = append(ops, clientv3.OpDelete(string(kv.Key)))
					n++
					if len(ops) == maxBatch {
						flush()
					}
				}
			}
			return true
		})
		if err != nil {
			continue
		}
		flush()
		if n > 0 {
			s.log.Debug("etcd: swept expired assignments", "gateway", me, "count", n)
		}
	}
}

// loadPage is how many keys one read of load or the sweep asks for: a
// million assignments in one answer took 6–16 s to read on a busy box, a
// deadline that grows with the site; pages of this size take
// milliseconds each, every one under its own deadline.
const loadPage = 10000

// readPrefix reads every key under prefix at one revision, in pages,
// handing each page to fn until it says stop; it returns that revision.
func (s *Store) readPrefix(ctx context.Context, prefix string, fn func([]*mvccpb.KeyValue) (more bool)) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	from := prefix
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(loadPage)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		pctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout+s.cfg.LeaseTTL)
		resp, err := s.cli.Get(pctx, from, opts...)
		cancel()
		if err != nil {
			return 0, err
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		if !fn(resp.Kvs) || !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// load reads everything under the prefix and replaces the mirror.
func (s *Store) load(ctx context.Context) (int64, error) {
	var kvs []*mvccpb.KeyValue
	rev, err := s.readPrefix(ctx, s.pfx, func(page []*mvccpb.KeyValue) bool { kvs = append(kvs, page...); return true })
	if err != nil {
		return 0, fmt.Errorf("loading: %w", err)
	}
	s.mu.Lock()
	oldMoves := s.moves
	s.users = map[string]entry{}
	s.usersPeak = 0
	s.hosts = map[string]director.HostRecord{}
	s.moves = map[string]director.Move{}
	s.members = map[string]string{}
	// Hosts first, so that assignments share their backend names.
	hostsPfx := []byte(s.pfx + "hosts/")
	for _, kv := range kvs {
		if bytes.HasPrefix(kv.Key, hostsPfx) {
			s.applyLocked(kv, false)
		}
	}
	for _, kv := range kvs {
		if !bytes.HasPrefix(kv.Key, hostsPfx) {
			s.applyLocked(kv, false)
		}
	}
	var ended []string
	for id := range oldMoves {
		if _, ok := s.moves[id]; !ok {
			ended = append(ended, id)
		}
	}
	moves := make([]director.Move, 0, len(s.moves))
	for _, m := range s.moves {
		moves = append(moves, m)
	}
	hosts := s.hostListLocked()
	s.mu.Unlock()
	s.cluster.HostsChanged(hosts)
	s.endMoves(ended)
	for _, m := range moves {
		s.startMove(m)
	}
	return rev, nil
}

// setUserLocked stores e for key unless the mirror has something newer.
func (s *Store) setUserLocked(key string, e entry) {
	if old, have := s.users[key]; have && old.mod > e.mod {
		return
	}
	s.users[key] = e
	if n := len(s.users); n > s.usersPeak {
		s.usersPeak = n
	}
}

// shrinkBelow: a map that has fallen under a quarter of its peak (and
// had at least this many users) is rebuilt.
const shrinkBelow = 4096

func (s *Store) deleteUserLocked(key string) {
	delete(s.users, key)
	if n := len(s.users); s.usersPeak >= shrinkBelow && n < s.usersPeak/4 {
		m := make(map[string]entry, n)
		for k, v := range s.users {
			m[k] = v
		}
		s.users, s.usersPeak = m, n
	}
}

// backendName returns the configured host's own copy of ip when there is
// one: an assignment decoded from a value would otherwise keep the whole
// value's bytes alive for its backend name, per user.
func (s *Store) backendName(ip string) string {
	if h, ok := s.hosts[ip]; ok {
		return h.IP
	}
	return ip
}

// applyLocked puts one key-value into the mirror; it reports a new move.
func (s *Store) applyLocked(kv *mvccpb.KeyValue, deleted bool) (newMove *director.Move, endedMove string, hostsChanged bool) {
	k := strings.TrimPrefix(string(kv.Key), s.pfx)
	kind, rest, _ := strings.Cut(k, "/")
	switch kind {
	case "users":
		if deleted {
			s.deleteUserLocked(rest)
			return
		}
		if a, ok := decodeAssignment(kv.Value); ok {
			a.Backend = s.backendName(a.Backend)
			// The key without the prefix, in memory of its own (rest
			// is a slice of the whole key).
			s.setUserLocked(strings.Clone(rest), entry{a: a, mod: kv.ModRevision})
		}
	case "hosts":
		hostsChanged = true
		if deleted {
			delete(s.hosts, rest)
			return
		}
		var h director.HostRecord
		if json.Unmarshal(kv.Value, &h) == nil && h.IP != "" {
			s.hosts[h.IP] = h
		}
	case "gateways":
		if deleted {
			delete(s.members, rest)
			return
		}
		var m struct{ Name string }
		json.Unmarshal(kv.Value, &m)
		s.members[rest] = m.Name
	case "moves":
		if deleted {
			if _, ok := s.moves[rest]; ok {
				delete(s.moves, rest)
				endedMove = rest
			}
			return
		}
		var m director.Move
		if json.Unmarshal(kv.Value, &m) == nil && m.ID == rest {
			if _, ok := s.moves[rest]; !ok {
				s.moves[rest] = m
				newMove = &m
			}
		}
	}
	return
}

func (s *Store) hostListLocked() []director.HostRecord {
	out := make([]director.HostRecord, 0, len(s.hosts))
	for _, h := range s.hosts {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}

// watch applies changes from rev on until the watch breaks.
func (s *Store) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	ch := s.cli.Watch(wctx, s.pfx, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for resp := range ch {
		if err := resp.Err(); err != nil {
			return err
		}
		var newMoves []director.Move
		var ended []string
		hostsChanged, ackSeen := false, false
		s.mu.Lock()
		for _, ev := range resp.Events {
			nm, em, hc := s.applyLocked(ev.Kv, ev.Type == clientv3.EventTypeDelete)
			if nm != nil {
				newMoves = append(newMoves, *nm)
			}
			if em != "" {
				ended = append(ended, em)
			}
			hostsChanged = hostsChanged || hc
			ackSeen = ackSeen || strings.HasPrefix(string(ev.Kv.Key), s.pfx+"acks/") || strings.HasPrefix(string(ev.Kv.Key), s.pfx+"gateways/")
			if ev.Type == clientv3.EventTypePut && ev.Kv.Version == 1 && strings.HasPrefix(string(ev.Kv.Key), s.pfx+"who/") {
				go s.answerWho(ctx, strings.TrimPrefix(string(ev.Kv.Key), s.pfx+"who/"), ev.Kv.Value)
			}
		}
		hosts := s.hostListLocked()
		pendingMoves := make([]string, 0, len(s.moves))
		for id := range s.moves {
			pendingMoves = append(pendingMoves, id)
		}
		s.mu.Unlock()
		// Order matters: hosts first (a host-down move's new state), then
		// holds, and holds lift only after the assignment changes that
		// came before the move record's deletion.
		if hostsChanged {
			s.cluster.HostsChanged(hosts)
		}
		for _, m := range newMoves {
			s.startMove(m)
		}
		s.endMoves(ended)
		if ackSeen {
			for _, id := range pendingMoves {
				go s.tryFinalize(context.WithoutCancel(ctx), id)
			}
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("watch closed")
}

func (s *Store) endMoves(ids []string) {
	for _, id := range ids {
		s.mu.Lock()
		delete(s.handled, id)
		s.mu.Unlock()
		s.cluster.MoveEnded(id)
	}
}

// startMove carries a move out on this gateway: evict, then acknowledge
// under the current lease, then try to finish it.
func (s *Store) startMove(m director.Move) {
	s.mu.Lock()
	lease := s.lease
	if s.handled[m.ID] == lease {
		s.mu.Unlock()
		return
	}
	s.handled[m.ID] = lease
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.cluster.Evict(s.ctx, m); err != nil {
			return
		}
		for s.ctx.Err() == nil {
			ctx, cancel := context.WithTimeout(s.ctx, s.cfg.DialTimeout)
			_, err := s.cli.Put(ctx, s.ackPrefix(m.ID)+strconv.FormatInt(int64(lease), 16), s.cfg.Name, clientv3.WithLease(lease))
			cancel()
			if err == nil {
				break
			}
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				return // a new session acknowledges again
			}
			time.Sleep(200 * time.Millisecond)
		}
		s.tryFinalize(s.ctx, m.ID)
	}()
}

// tryFinalize finishes move id if every live gateway acknowledged it:
// it changes the assignments, then deletes the record. Any gateway (and
// the tool that asked for the move) may run it; every write is guarded by
// the record's revision, so a late finisher changes nothing.
func (s *Store) tryFinalize(ctx context.Context, id string) (done bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout+s.cfg.LeaseTTL)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(
		clientv3.OpGet(s.moveKey(id)),
		clientv3.OpGet(s.pfx+"gateways/", clientv3.WithPrefix(), clientv3.WithKeysOnly()),
		clientv3.OpGet(s.ackPrefix(id), clientv3.WithPrefix(), clientv3.WithKeysOnly()),
	).Commit()
	if err != nil {
		return false, err
	}
	mv := resp.Responses[0].GetResponseRange().Kvs
	if len(mv) == 0 {
		return true, nil
	}
	var m director.Move
	if err := json.Unmarshal(mv[0].Value, &m); err != nil {
		return false, fmt.Errorf("move %s: %w", id, err)
	}
	moveRev := mv[0].CreateRevision
	acked := map[string]bool{}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		acked[strings.TrimPrefix(string(kv.Key), s.ackPrefix(id))] = true
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		if !acked[strings.TrimPrefix(string(kv.Key), s.pfx+"gateways/")] {
			return false, nil
		}
	}
	guard := clientv3.Compare(clientv3.CreateRevision(s.moveKey(id)), "=", moveRev)
	switch {
	case m.Keep:
	case m.Key != "" && m.To != "":
		a := director.Assignment{Backend: m.To, Expires: m.Until}
		if _, err := s.cli.Txn(ctx).If(guard).Then(clientv3.OpPut(s.userKey(m.Key), encodeAssignment(a))).Commit(); err != nil {
			return false, err
		}
	case m.Key != "":
		if _, err := s.cli.Txn(ctx).If(guard).Then(clientv3.OpDelete(s.userKey(m.Key))).Commit(); err != nil {
			return false, err
		}
	default:
		if err := s.deleteAssignmentsTo(ctx, m.Backend, guard); err != nil {
			return false, err
		}
	}
	ops := []clientv3.Op{clientv3.OpDelete(s.moveKey(id)), clientv3.OpDelete(s.ackPrefix(id), clientv3.WithPrefix())}
	if m.RemoveHost {
		ops = append(ops, clientv3.OpDelete(s.hostKey(m.Backend)))
	}
	r, err := s.cli.Txn(ctx).If(guard).Then(ops...).Commit()
	if err != nil {
		return false, err
	}
	if r.Succeeded {
		s.log.Info("etcd: move done", "move", id, "reason", m.Reason, "backend", m.Backend, "key", m.Key, "to", m.To, "by", m.By)
	}
	return true, nil
}

// deleteAssignmentsTo deletes every assignment naming backend while the
// move record (guard) stands, each only at the revision read.
func (s *Store) deleteAssignmentsTo(ctx context.Context, backend string, guard clientv3.Cmp) error {
	for attempt := 0; attempt < 10; attempt++ {
		var kvs []*mvccpb.KeyValue
		_, err := s.readPrefix(ctx, s.pfx+"users/", func(page []*mvccpb.KeyValue) bool {
			for _, kv := range page {
				if a, ok := decodeAssignment(kv.Value); ok && a.Backend == backend {
					kvs = append(kvs, kv)
				}
			}
			return true
		})
		if err != nil {
			return err
		}
		if len(kvs) == 0 {
			return nil
		}
		for len(kvs) > 0 {
			n := min(len(kvs), maxBatch)
			cmps := []clientv3.Cmp{guard}
			var ops []clientv3.Op
			for _, kv := range kvs[:n] {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(string(kv.Key)), "=", kv.ModRevision))
				ops = append(ops, clientv3.OpDelete(string(kv.Key)))
			}
			r, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
			if err != nil {
				return err
			}
			if !r.Succeeded {
				break // something changed meanwhile: read again
			}
			kvs = kvs[n:]
		}
	}
	return errors.New("assignments keep changing")
}

// Close implements director.Store.
func (s *Store) Close() error {
	s.cancel()
	s.wg.Wait()
	if s.ownCli {
		return s.cli.Close()
	}
	return nil
}

// Hosts implements director.Store.
func (s *Store) Hosts(ctx context.Context) ([]director.HostRecord, error) {
	resp, err := s.cli.Get(ctx, s.pfx+"hosts/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	var out []director.HostRecord
	for _, kv := range resp.Kvs {
		var h director.HostRecord
		if json.Unmarshal(kv.Value, &h) == nil && h.IP != "" {
			out = append(out, h)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out, nil
}

// PutHost implements director.Store.
func (s *Store) PutHost(ctx context.Context, h director.HostRecord) error {
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if _, err := s.cli.Put(ctx, s.hostKey(h.IP), string(b)); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

// UpdateHost implements director.Store: read, change, write at the
// revision read; again if someone else wrote meanwhile.
func (s *Store) UpdateHost(ctx context.Context, ip string, fn func(*director.HostRecord) error) error {
	k := s.hostKey(ip)
	for attempt := 0; attempt < 10; attempt++ {
		resp, err := s.cli.Get(ctx, k)
		if err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		if len(resp.Kvs) == 0 {
			return fmt.Errorf("%w: %s", director.ErrNotFound, ip)
		}
		var h director.HostRecord
		if err := json.Unmarshal(resp.Kvs[0].Value, &h); err != nil {
			return fmt.Errorf("etcd: host %s: %w", ip, err)
		}
		if err := fn(&h); err != nil {
			if errors.Is(err, director.ErrUnchanged) {
				return nil
			}
			return err
		}
		b, err := json.Marshal(h)
		if err != nil {
			return err
		}
		r, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", resp.Kvs[0].ModRevision)).
			Then(clientv3.OpPut(k, string(b))).Commit()
		if err != nil {
			return fmt.Errorf("etcd: %w", err)
		}
		if r.Succeeded {
			return nil
		}
	}
	return fmt.Errorf("etcd: host %s keeps changing", ip)
}

// Claim implements director.Store.
func (s *Store) Claim(ctx context.Context, key string, proposed director.Assignment, now time.Time) (director.Assignment, bool, error) {
	if s.cluster != nil {
		s.mu.Lock()
		fenced := s.fenced
		e, ok := s.users[key]
		s.mu.Unlock()
		if fenced {
			return director.Assignment{}, false, director.ErrFenced
		}
		// The fast path: this gateway knows a live assignment with life
		// to spare. The director refreshes it within a second.
		if ok && e.a.Expires.After(now.Add(s.margin)) {
			return e.a, false, nil
		}
	}
	k := s.userKey(key)
	for attempt := 0; attempt < 5; attempt++ {
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
			Then(clientv3.OpPut(k, encodeAssignment(proposed))).
			Else(clientv3.OpGet(k)).Commit()
		if err != nil {
			return director.Assignment{}, false, fmt.Errorf("etcd: %w", err)
		}
		if resp.Succeeded {
			s.remember(key, proposed, resp.Header.Revision)
			return proposed, true, nil
		}
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue // deleted meanwhile
		}
		kv := kvs[0]
		a, ok := decodeAssignment(kv.Value)
		if ok && a.Expires.After(now) {
			mod := kv.ModRevision
			if proposed.Expires.Sub(a.Expires) > s.slack {
				ext := director.Assignment{Backend: a.Backend, Expires: proposed.Expires}
				r, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)).
					Then(clientv3.OpPut(k, encodeAssignment(ext))).Commit()
				if err == nil && r.Succeeded {
					a, mod = ext, r.Header.Revision
				}
			}
			s.remember(key, a, mod)
			return a, false, nil
		}
		// Expired (or unreadable): replace it, at the revision read.
		r, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", kv.ModRevision)).
			Then(clientv3.OpPut(k, encodeAssignment(proposed))).Commit()
		if err != nil {
			return director.Assignment{}, false, fmt.Errorf("etcd: %w", err)
		}
		if r.Succeeded {
			s.remember(key, proposed, r.Header.Revision)
			return proposed, true, nil
		}
	}
	return director.Assignment{}, false, errors.New("etcd: assignment keeps changing")
}

// remember puts what this gateway wrote or read into the mirror at once,
// unless the watch already brought something newer.
func (s *Store) remember(key string, a director.Assignment, mod int64) {
	if s.cluster == nil {
		return
	}
	s.mu.Lock()
	a.Backend = s.backendName(a.Backend)
	s.setUserLocked(key, entry{a: a, mod: mod})
	s.mu.Unlock()
}

// Refresh implements director.Store. Refreshes that would move an expiry
// by less than a quarter of user_expire are skipped, so a user logging in
// and out all day costs a write every few minutes; the rest go in batches,
// each guarded by the revision the mirror knows.
func (s *Store) Refresh(ctx context.Context, items []director.Refresh) ([]string, error) {
	type job struct {
		r   director.Refresh
		mod int64
	}
	var jobs []job
	var lost []string
	s.mu.Lock()
	for _, r := range items {
		e, ok := s.users[r.Key]
		switch {
		case s.cluster != nil && ok && e.a.Backend != r.Backend:
			lost = append(lost, r.Key)
		case s.cluster != nil && ok && !r.Until.After(e.a.Expires.Add(s.slack)):
			// Recent enough.
		default:
			jobs = append(jobs, job{r, e.mod})
		}
	}
	s.mu.Unlock()
	var slow []director.Refresh
	for len(jobs) > 0 {
		n := min(len(jobs), maxBatch)
		batch := jobs[:n]
		jobs = jobs[n:]
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		for _, j := range batch {
			if j.mod == 0 {
				slow = append(slow, j.r)
				continue
			}
			k := s.userKey(j.r.Key)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", j.mod))
			ops = append(ops, clientv3.OpPut(k, encodeAssignment(director.Assignment{Backend: j.r.Backend, Expires: j.r.Until})))
		}
		if len(ops) == 0 {
			continue
		}
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil {
			return lost, fmt.Errorf("etcd: %w", err)
		}
		if resp.Succeeded {
			for _, j := range batch {
				if j.mod != 0 {
					s.remember(j.r.Key, director.Assignment{Backend: j.r.Backend, Expires: j.r.Until}, resp.Header.Revision)
				}
			}
			continue
		}
		for _, j := range batch {
			if j.mod != 0 {
				slow = append(slow, j.r)
			}
		}
	}
	// One at a time: read, check the backend, write at that revision.
	for _, r := range slow {
		k := s.userKey(r.Key)
		for attempt := 0; ; attempt++ {
			g, err := s.cli.Get(ctx, k)
			if err != nil {
				return lost, fmt.Errorf("etcd: %w", err)
			}
			if len(g.Kvs) == 0 {
				lost = append(lost, r.Key)
				break
			}
			a, ok := decodeAssignment(g.Kvs[0].Value)
			if !ok || a.Backend != r.Backend {
				lost = append(lost, r.Key)
				break
			}
			if !r.Until.After(a.Expires) {
				s.remember(r.Key, a, g.Kvs[0].ModRevision)
				break
			}
			a.Expires = r.Until
			resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k), "=", g.Kvs[0].ModRevision)).
				Then(clientv3.OpPut(k, encodeAssignment(a))).Commit()
			if err != nil {
				return lost, fmt.Errorf("etcd: %w", err)
			}
			if resp.Succeeded {
				s.remember(r.Key, a, resp.Header.Revision)
				break
			}
			if attempt == 3 {
				break
			}
		}
	}
	return lost, nil
}

// Get implements director.Store.
func (s *Store) Get(ctx context.Context, key string) (director.Assignment, bool, error) {
	resp, err := s.cli.Get(ctx, s.userKey(key))
	if err != nil {
		return director.Assignment{}, false, fmt.Errorf("etcd: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return director.Assignment{}, false, nil
	}
	a, ok := decodeAssignment(resp.Kvs[0].Value)
	return a, ok, nil
}

// Delete implements director.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.cli.Delete(ctx, s.userKey(key)); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

// Range implements director.Store.
func (s *Store) Range(ctx context.Context, fn func(string, director.Assignment) bool) error {
	_, err := s.readPrefix(ctx, s.pfx+"users/", func(page []*mvccpb.KeyValue) bool {
		for _, kv := range page {
			if a, ok := decodeAssignment(kv.Value); ok && !fn(strings.TrimPrefix(string(kv.Key), s.pfx+"users/"), a) {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	return nil
}

// Move implements director.Store: it writes the move record (with the
// host's new state, in the same transaction) and waits until the record
// is gone, helping to finish it.
func (s *Store) Move(ctx context.Context, m director.Move) error {
	if m.ID == "" {
		m.ID = director.NewMoveID()
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	ops := []clientv3.Op{clientv3.OpPut(s.moveKey(m.ID), string(b))}
	if m.Host != nil {
		hb, _ := json.Marshal(m.Host)
		ops = append(ops, clientv3.OpPut(s.hostKey(m.Host.IP), string(hb)))
	}
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(s.moveKey(m.ID)), "=", 0)).Then(ops...).Commit()
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("etcd: move %s exists already", m.ID)
	}
	s.log.Info("etcd: move started", "move", m.ID, "reason", m.Reason, "backend", m.Backend, "key", m.Key, "to", m.To, "by", m.By)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := s.tryFinalize(ctx, m.ID)
		if done {
			return nil
		}
		if err != nil && ctx.Err() == nil {
			s.log.Debug("etcd: finishing a move", "move", m.ID, "reason", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("etcd: move %s not done yet (it goes on): %w", m.ID, ctx.Err())
		case <-tick.C:
		}
	}
}

// Members returns the live gateways (lease -> name) as this gateway's
// mirror knows them.
func (s *Store) Members() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.members))
	for k, v := range s.members {
		out[k] = v
	}
	return out
}

func (s *Store) loadKey(l clientv3.LeaseID) string {
	return s.pfx + "load/" + strconv.FormatInt(int64(l), 16)
}

// publishEvery is how often a gateway tells the others what it serves
// (when that changed): drain and status read it.
const publishEvery = time.Second

// publish writes this gateway's load under its lease whenever it changes,
// and at least every five rounds (so that a drain sees it is current).
func (s *Store) publish(ctx context.Context, lease clientv3.LeaseID) error {
	var last string
	rounds := 0
	t := time.NewTicker(publishEvery)
	defer t.Stop()
	for {
		g := s.cluster.Load()
		g.ID, g.Name = strconv.FormatInt(int64(lease), 16), s.cfg.Name
		at := g.At
		g.At = time.Time{}
		b, _ := json.Marshal(g)
		// While a host is drained, report every round: a drain waits for
		// every gateway to have reported since the host looked empty.
		s.mu.Lock()
		draining := false
		for _, h := range s.hosts {
			draining = draining || h.Drained
		}
		s.mu.Unlock()
		if string(b) != last || rounds >= 5 || draining {
			g.At = at
			full, _ := json.Marshal(g)
			pctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
			_, err := s.cli.Put(pctx, s.loadKey(lease), string(full), clientv3.WithLease(lease))
			cancel()
			if err == nil {
				last, rounds = string(b), 0
			}
		}
		rounds++
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Gateways implements director.Store.
func (s *Store) Gateways(ctx context.Context) ([]director.GatewayLoad, error) {
	resp, err := s.cli.Get(ctx, s.pfx+"load/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	var out []director.GatewayLoad
	for _, kv := range resp.Kvs {
		var g director.GatewayLoad
		if json.Unmarshal(kv.Value, &g) == nil {
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// whoQuestion is what Who asks the gateways; the answers live under the
// asker's short lease, so they go with it.
type whoQuestion struct {
	Key   string           `json:"key"`
	Lease clientv3.LeaseID `json:"lease"`
}

// answerWho answers a Who question with what this gateway serves of the
// key.
func (s *Store) answerWho(ctx context.Context, id string, v []byte) {
	var q whoQuestion
	if json.Unmarshal(v, &q) != nil {
		return
	}
	s.mu.Lock()
	lease := s.lease
	s.mu.Unlock()
	u := s.cluster.UserLoad(q.Key)
	u.Gateway = s.cfg.Name
	b, _ := json.Marshal(u)
	actx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	s.cli.Put(actx, s.pfx+"whoans/"+id+"/"+strconv.FormatInt(int64(lease), 16), string(b), clientv3.WithLease(q.Lease))
}

// Who implements director.Store: a question record every gateway watches
// and answers; it waits up to two seconds for every live gateway.
func (s *Store) Who(ctx context.Context, key string) ([]director.UserLoad, error) {
	g, err := s.cli.Grant(ctx, 10)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.cli.Revoke(rctx, g.ID)
		cancel()
	}()
	id := director.NewMoveID()
	b, _ := json.Marshal(whoQuestion{Key: key, Lease: g.ID})
	if _, err := s.cli.Put(ctx, s.pfx+"who/"+id, string(b), clientv3.WithLease(g.ID)); err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, err := s.cli.Txn(ctx).Then(
			clientv3.OpGet(s.pfx+"gateways/", clientv3.WithPrefix(), clientv3.WithKeysOnly()),
			clientv3.OpGet(s.pfx+"whoans/"+id+"/", clientv3.WithPrefix()),
		).Commit()
		if err != nil {
			return nil, fmt.Errorf("etcd: %w", err)
		}
		members := resp.Responses[0].GetResponseRange().Kvs
		answers := resp.Responses[1].GetResponseRange().Kvs
		if len(answers) >= len(members) || time.Now().After(deadline) {
			var out []director.UserLoad
			for _, kv := range answers {
				var u director.UserLoad
				if json.Unmarshal(kv.Value, &u) == nil {
					out = append(out, u)
				}
			}
			sort.Slice(out, func(i, j int) bool { return out[i].Gateway < out[j].Gateway })
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
