// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/maildirector/maildirector/director"
)

// The operations both doors offer, implemented once over Ops. Errors are
// classified with the values below, which each door renders its way
// (Dovecot's reply lines; HTTP statuses).
var (
	// ErrUnknownHost: no such backend (Dovecot's NOTFOUND).
	ErrUnknownHost = director.ErrNotFound
	// ErrTagChange: a backend's tag cannot change (remove it first).
	ErrTagChange = errors.New("host tag can't be changed")
	// ErrVHostsTooLarge: more than director.MaxVHosts.
	ErrVHostsTooLarge = errors.New("vhost count too large")
	// ErrLastHost: removing the only backend would leave nobody a place.
	ErrLastHost = director.ErrLastHost
	// ErrHostDown: a user cannot be moved to a backend that is down.
	ErrHostDown = errors.New("host is down")
	// ErrNoAssignment: a user hash with no assignment in the store cannot
	// be moved (the store keys users by name; only a name can be placed).
	ErrNoAssignment = errors.New("user hash has no assignment; move the user by name")
)

// BadRequest is a malformed argument: nothing was changed.
type BadRequest struct{ Msg string }

func (e *BadRequest) Error() string { return e.Msg }

func badRequest(format string, args ...any) error {
	return &BadRequest{Msg: fmt.Sprintf(format, args...)}
}

// hashError: a user name that username_hash cannot expand.
type hashError struct{ err error }

func (e *hashError) Error() string { return "cannot hash the user name: " + e.err.Error() }
func (e *hashError) Unwrap() error { return e.err }

// HostStatus is a backend as the store keeps it (the JSON of `maildirector
// director status --json`), with its users and its sessions per gateway.
type HostStatus struct {
	director.HostRecord
	// Users is the number of live assignments to the backend.
	Users int `json:"users"`
	// Sessions is the relayed sessions and LMTP deliveries on the
	// backend, per gateway name, as the gateways report them.
	Sessions map[string]int `json:"sessions,omitempty"`
}

// UserInfo says where a user is and where the ring would put it
// (Dovecot's USER-LOOKUP).
type UserInfo struct {
	// User is what the ring hashes: username_hash expanded (with the
	// default %Lu, the lower-cased user name); empty when looked up by a
	// hash that has no assignment.
	User string `json:"user,omitempty"`
	Tag  string `json:"tag"`
	Hash uint32 `json:"hash"`
	// Current and Expires: the live assignment, if any.
	Current string    `json:"current,omitempty"`
	Expires time.Time `json:"expires,omitzero"`
	// Hashed is the backend the ring of the stored backends names;
	// InitialConfig the one the configuration file's backends name.
	Hashed        string `json:"hashed,omitempty"`
	InitialConfig string `json:"initial_config,omitempty"`
}

// UserEntry is one live assignment (Dovecot's USER-LIST line).
type UserEntry struct {
	User    string    `json:"user"`
	Tag     string    `json:"tag"`
	Hash    uint32    `json:"hash"`
	Host    string    `json:"host"`
	Expires time.Time `json:"expires"`
}

// service implements the operations once, for both doors.
type service struct {
	ops Ops
	now func() time.Time
}

func (s *service) timeNow() time.Time {
	if s.now != nil {
		return s.now()
	}
	return time.Now()
}

// parseIP reads a backend address as Dovecot's net_addr2ip does (an IPv6
// address may come in brackets) and returns it in the form the ring
// hashes.
func parseIP(s string) (string, error) {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return "", badRequest("not an IP address: %q", s)
	}
	return a.String(), nil
}

// parseHash reads a decimal user hash (Dovecot's str_to_uint).
func parseHash(s string) (uint32, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil
}

// splitKey splits a store key into its backend group and the string the
// ring hashes.
func splitKey(key string) (tag, hashKey string) {
	tag, hashKey, _ = strings.Cut(key, "/")
	return tag, hashKey
}

func compareIP(a, b string) int {
	x, errx := netip.ParseAddr(a)
	y, erry := netip.ParseAddr(b)
	if errx != nil || erry != nil {
		return cmp.Compare(a, b)
	}
	return x.Compare(y)
}

// hosts returns every backend with its live users, by IP.
func (s *service) hosts(ctx context.Context) ([]HostStatus, error) {
	recs, err := s.ops.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	users := map[string]int{}
	now := s.timeNow()
	if err := s.ops.Range(ctx, func(_ string, a director.Assignment) bool {
		if a.Expires.After(now) {
			users[a.Backend]++
		}
		return true
	}); err != nil {
		return nil, err
	}
	out := make([]HostStatus, len(recs))
	for i, h := range recs {
		out[i] = HostStatus{HostRecord: h, Users: users[h.IP]}
	}
	slices.SortFunc(out, func(a, b HostStatus) int { return compareIP(a.IP, b.IP) })
	return out, nil
}

// addSessions fills each backend's sessions per gateway from the
// gateways' reports.
func addSessions(hosts []HostStatus, gws []Gateway) {
	for i := range hosts {
		for _, g := range gws {
			if n := g.Sessions[hosts[i].IP] + g.Deliveries[hosts[i].IP]; n > 0 {
				if hosts[i].Sessions == nil {
					hosts[i].Sessions = map[string]int{}
				}
				hosts[i].Sessions[g.Name] += n
			}
		}
	}
}

// host returns one stored backend.
func (s *service) host(ctx context.Context, ip string) (director.HostRecord, error) {
	recs, err := s.ops.Hosts(ctx)
	if err != nil {
		return director.HostRecord{}, err
	}
	for _, h := range recs {
		if h.IP == ip {
			return h, nil
		}
	}
	return director.HostRecord{}, fmt.Errorf("%w: %s", ErrUnknownHost, ip)
}

// addHost adds a backend, or sets an existing one's vhost count (vhosts <
// 0: the default for a new backend, unchanged for an existing one). An
// empty tag keeps an existing backend's; another one is refused.
func (s *service) addHost(ctx context.Context, ip, tag string, vhosts int, by string) error {
	ip, err := parseIP(ip)
	if err != nil {
		return err
	}
	if vhosts > director.MaxVHosts {
		return ErrVHostsTooLarge
	}
	if strings.ContainsAny(tag, "/\t\r\n") {
		return badRequest("tag %q may not contain '/' or control characters", tag)
	}
	h := director.Host{IP: ip, Tag: tag, VHosts: vhosts}
	old, err := s.host(ctx, ip)
	switch {
	case err == nil:
		if tag != "" && tag != old.Tag {
			return ErrTagChange
		}
		h.Tag = old.Tag
		if vhosts < 0 {
			h.VHosts = old.VHosts
		}
	case errors.Is(err, ErrUnknownHost):
		if vhosts < 0 {
			h.VHosts = director.DefaultVHosts
		}
	default:
		return err
	}
	return s.ops.AddHost(ctx, h, by)
}

// updateHost sets an existing backend's vhost count.
func (s *service) updateHost(ctx context.Context, ip, tag string, vhosts int, by string) error {
	ip, err := parseIP(ip)
	if err != nil {
		return err
	}
	if vhosts < 0 {
		return badRequest("a vhost count is needed")
	}
	if vhosts > director.MaxVHosts {
		return ErrVHostsTooLarge
	}
	old, err := s.host(ctx, ip)
	if err != nil {
		return err
	}
	if tag != "" && tag != old.Tag {
		return ErrTagChange
	}
	return s.ops.SetVHosts(ctx, ip, vhosts, by)
}

func (s *service) up(ctx context.Context, ip, by string) error {
	ip, err := parseIP(ip)
	if err != nil {
		return err
	}
	return s.ops.HostUp(ctx, ip, by)
}

// down marks a backend down; run again, it finishes an earlier down whose
// move did not end (a gateway died, a timeout).
func (s *service) down(ctx context.Context, ip, by string) error {
	ip, err := parseIP(ip)
	if err != nil {
		return err
	}
	return s.ops.HostDown(ctx, ip, by)
}

func (s *service) remove(ctx context.Context, ip, by string) error {
	ip, err := parseIP(ip)
	if err != nil {
		return err
	}
	recs, err := s.ops.Hosts(ctx)
	if err != nil {
		return err
	}
	found := false
	for _, h := range recs {
		found = found || h.IP == ip
	}
	switch {
	case !found:
		return fmt.Errorf("%w: %s", ErrUnknownHost, ip)
	case len(recs) == 1:
		return ErrLastHost
	}
	return s.ops.RemoveHost(ctx, ip, by)
}

// flush sends a backend's users (every backend's, with ip "") back to the
// ring, safely: their sessions end on every gateway first.
func (s *service) flush(ctx context.Context, ip, by string) error {
	if ip != "" {
		ip, err := parseIP(ip)
		if err != nil {
			return err
		}
		return s.ops.Flush(ctx, ip, by)
	}
	recs, err := s.ops.Hosts(ctx)
	if err != nil {
		return err
	}
	for _, h := range recs {
		if err := s.ops.Flush(ctx, h.IP, by); err != nil && !errors.Is(err, ErrUnknownHost) {
			return err
		}
	}
	return nil
}

// drain takes a backend out of service (see Ops.Drain).
func (s *service) drain(ctx context.Context, ip string, o DrainOptions, by string) error {
	ip, err := parseIP(ip)
	if err != nil {
		return err
	}
	if _, err := s.host(ctx, ip); err != nil {
		return err
	}
	return s.ops.Drain(ctx, ip, o, by)
}

func (s *service) undrain(ctx context.Context, ip, by string) error {
	ip, err := parseIP(ip)
	if err != nil {
		return err
	}
	return s.ops.Undrain(ctx, ip, by)
}

// keyByHash finds the store key of a user hash in backend group tag,
// preferring a live assignment; "" when the store has none.
func (s *service) keyByHash(ctx context.Context, tag string, hash uint32) (string, error) {
	now := s.timeNow()
	found := ""
	err := s.ops.Range(ctx, func(key string, a director.Assignment) bool {
		t, hk := splitKey(key)
		if t != tag || director.UserHash(hk) != hash {
			return true
		}
		found = key
		return !a.Expires.After(now)
	})
	return found, err
}

// userKey resolves a user name or a decimal hash (Dovecot accepts both)
// to a store key in tag, and the hash.
func (s *service) userKey(ctx context.Context, userOrHash, tag string) (key string, hash uint32, err error) {
	if h, ok := parseHash(userOrHash); ok {
		key, err = s.keyByHash(ctx, tag, h)
		return key, h, err
	}
	key, err = s.ops.StoreKey(userOrHash, tag)
	if err != nil {
		return "", 0, &hashError{err}
	}
	_, hk := splitKey(key)
	return key, director.UserHash(hk), nil
}

func ringLookup(hosts []director.Host, tag string, hash uint32) string {
	var group []director.Host
	for _, h := range hosts {
		if h.Tag == tag {
			group = append(group, h)
		}
	}
	ip, _ := director.NewRing(group).Lookup(hash)
	return ip
}

// lookup says where a user (a name or a decimal hash) is, and where the
// ring would put it.
func (s *service) lookup(ctx context.Context, userOrHash, tag string) (UserInfo, error) {
	key, hash, err := s.userKey(ctx, userOrHash, tag)
	if err != nil {
		return UserInfo{}, err
	}
	info := UserInfo{Tag: tag, Hash: hash}
	if key != "" {
		_, info.User = splitKey(key)
		a, ok, err := s.ops.Get(ctx, key)
		if err != nil {
			return UserInfo{}, err
		}
		if ok && a.Expires.After(s.timeNow()) {
			info.Current, info.Expires = a.Backend, a.Expires
		}
	}
	recs, err := s.ops.Hosts(ctx)
	if err != nil {
		return UserInfo{}, err
	}
	stored := make([]director.Host, len(recs))
	for i, h := range recs {
		stored[i] = h.Host
	}
	info.Hashed = ringLookup(stored, tag, hash)
	info.InitialConfig = ringLookup(s.ops.ConfiguredHosts(), tag, hash)
	return info, nil
}

// users lists the live assignments, to backend ip only unless ip is "".
func (s *service) users(ctx context.Context, ip string) ([]UserEntry, error) {
	if ip != "" {
		var err error
		if ip, err = parseIP(ip); err != nil {
			return nil, err
		}
	}
	now := s.timeNow()
	var out []UserEntry
	err := s.ops.Range(ctx, func(key string, a director.Assignment) bool {
		if !a.Expires.After(now) || (ip != "" && a.Backend != ip) {
			return true
		}
		tag, hk := splitKey(key)
		out = append(out, UserEntry{User: hk, Tag: tag, Hash: director.UserHash(hk), Host: a.Backend, Expires: a.Expires})
		return true
	})
	slices.SortFunc(out, func(a, b UserEntry) int {
		return cmp.Or(cmp.Compare(a.Tag, b.Tag), cmp.Compare(a.User, b.User))
	})
	return out, err
}

// move sends a user (a name or a decimal hash) to backend ip, ending its
// sessions everywhere first. A user already there stays, undisturbed.
func (s *service) move(ctx context.Context, userOrHash, ip, by string) error {
	ip, err := parseIP(ip)
	if err != nil {
		return err
	}
	h, err := s.host(ctx, ip)
	if err != nil {
		return err
	}
	if h.Down {
		return fmt.Errorf("%w: %s", ErrHostDown, ip)
	}
	key, _, err := s.userKey(ctx, userOrHash, h.Tag)
	if err != nil {
		return err
	}
	if key == "" {
		return ErrNoAssignment
	}
	a, ok, err := s.ops.Get(ctx, key)
	if err != nil {
		return err
	}
	if ok && a.Backend == ip && a.Expires.After(s.timeNow()) {
		return nil
	}
	return s.ops.MoveUser(ctx, key, ip, by)
}

// kick ends a user's sessions on every gateway, in every backend group
// where it has a live assignment, and says in how many.
func (s *service) kick(ctx context.Context, user, by string) (int, error) {
	recs, err := s.ops.Hosts(ctx)
	if err != nil {
		return 0, err
	}
	tags := []string{""}
	for _, h := range recs {
		if !slices.Contains(tags, h.Tag) {
			tags = append(tags, h.Tag)
		}
	}
	n := 0
	now := s.timeNow()
	for _, tag := range tags {
		key, err := s.ops.StoreKey(user, tag)
		if err != nil {
			return n, &hashError{err}
		}
		a, ok, err := s.ops.Get(ctx, key)
		if err != nil {
			return n, err
		}
		if !ok || !a.Expires.After(now) {
			continue
		}
		if err := s.ops.Kick(ctx, key, by); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// removedHosts lists the configured backends the store no longer has
// (Dovecot's HOST-LIST-REMOVED), by IP.
func (s *service) removedHosts(ctx context.Context) ([]string, error) {
	recs, err := s.ops.Hosts(ctx)
	if err != nil {
		return nil, err
	}
	stored := map[string]bool{}
	for _, h := range recs {
		stored[h.IP] = true
	}
	var out []string
	for _, h := range s.ops.ConfiguredHosts() {
		if !stored[h.IP] {
			out = append(out, h.IP)
		}
	}
	slices.SortFunc(out, compareIP)
	return out, nil
}
