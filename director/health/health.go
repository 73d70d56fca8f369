// SPDX-License-Identifier: Apache-2.0

// Package health runs the built-in backend health checks (what poolmon did
// for Dovecot's Director, without its flapping and its lost HOST-FLUSH):
// every interval, each stored backend is probed (a TCP connect, the
// protocol's greeting, or a test login); fall consecutive failures take a
// host down through the store with a safe move (its users' sessions end on
// every gateway before they are placed elsewhere), rise consecutive
// successes bring it back up. Only hosts the checker took down itself come
// back: a host an operator took down stays down.
//
// One gateway of a cluster runs the checks at a time: the checker works
// only while it leads an election in the store (Elector), so that several
// gateways, which may see the backends differently, never fight over a
// host's state.
//
// It may import director and auth only.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/maildirector/maildirector/director"
)

// Hosts is what the checker needs from the director store.
type Hosts interface {
	// Hosts returns the backends as stored.
	Hosts(ctx context.Context) ([]director.HostRecord, error)
	// Down takes ip down with a safe move, recording that the health
	// checks did it and why. A host already down (by anyone) is left as
	// it is.
	Down(ctx context.Context, ip, reason string) error
	// Up brings ip up again, but only while it is down by the health
	// checks (an operator's down wins, also one made meanwhile).
	Up(ctx context.Context, ip, reason string) error
	// DownByHealth says whether h is down because the health checks took
	// it down (and not an operator).
	DownByHealth(h director.HostRecord) bool
}

// Elector runs fn while this gateway leads the election name, and cancels
// fn's context when leadership is lost; it campaigns again afterwards and
// returns only when ctx ends.
type Elector interface {
	Lead(ctx context.Context, name string, fn func(ctx context.Context)) error
}

// ErrNotOurs is what Hosts.Up returns for a host that is no longer down by
// the health checks (an operator took it down, or brought it up, meanwhile).
var ErrNotOurs = errors.New("health: the host is not down by the health checks")

// ElectionName is the election the checker campaigns in.
const ElectionName = "health"

// Check kinds.
const (
	CheckTCP    = "tcp"    // connect (and the TLS handshake with implicit TLS)
	CheckBanner = "banner" // connect and read the greeting
	CheckLogin  = "login"  // greeting, then log in with a test account
)

// Protocols.
const (
	IMAP  = "imap"
	POP3  = "pop3"
	LMTP  = "lmtp"
	Sieve = "sieve" // ManageSieve
)

// TLS modes.
const (
	TLSNone     = ""
	TLSImplicit = "implicit"
	TLSStartTLS = "starttls"
)

// Defaults.
const (
	DefaultInterval    = 10 * time.Second
	DefaultTimeout     = 5 * time.Second
	DefaultFall        = 3
	DefaultRise        = 2
	DefaultHistory     = 10
	DefaultMoveTimeout = 2 * time.Minute
)

// Config configures a Checker.
type Config struct {
	Interval time.Duration // between rounds (0: DefaultInterval)
	Timeout  time.Duration // bounds one check, connect to goodbye (0: DefaultTimeout)
	Fall     int           // consecutive failures that take a host down (0: DefaultFall)
	Rise     int           // consecutive successes that bring it back (0: DefaultRise)
	Check    string        // CheckTCP, CheckBanner (""), CheckLogin
	Protocol string        // IMAP (""), POP3, LMTP, Sieve
	// Port returns the port to check on a backend.
	Port func(ip string) int
	// LoginUser and LoginPassword are the test account of CheckLogin
	// (LMTP only needs the user: it is the RCPT TO).
	LoginUser, LoginPassword string
	// TLS is TLSNone, TLSImplicit or TLSStartTLS; TLSConfig is the base
	// configuration (roots, client certificate): the server name checked
	// is the backend's IP.
	TLS       string
	TLSConfig *tls.Config
	// HeloName is the name in LMTP's LHLO ("": "maildirector").
	HeloName string

	Hosts   Hosts
	Elector Elector
	// History is how many results are kept per host (0: DefaultHistory).
	History int
	// MoveTimeout bounds waiting for a host-down move (0:
	// DefaultMoveTimeout); past it the move goes on in the store.
	MoveTimeout time.Duration
	Logger      *slog.Logger     // nil: slog.Default()
	Now         func() time.Time // nil: time.Now
}

// Result is one check of one host.
type Result struct {
	At      time.Time     `json:"at"`
	OK      bool          `json:"ok"`
	Latency time.Duration `json:"latency"`
	// Error says why the check failed.
	Error string `json:"error,omitempty"`
	// Note says what a passed check could not test (a backend that
	// refuses plaintext logins on the check's connection).
	Note string `json:"note,omitempty"`
}

// HostHealth is what the checker knows of one backend.
type HostHealth struct {
	IP           string `json:"ip"`
	Down         bool   `json:"down"`
	DownByHealth bool   `json:"down_by_health"`
	// Failures and Successes are the current run of consecutive results.
	Failures  int `json:"failures"`
	Successes int `json:"successes"`
	// Changing is "down" or "up" while the checker changes the host.
	Changing string `json:"changing,omitempty"`
	// Results are the last checks, oldest first.
	Results []Result `json:"results"`
}

// Checker runs the health checks. Create it with New and call Run.
type Checker struct {
	cfg Config
	log *slog.Logger
	now func() time.Time

	mu      sync.Mutex
	hosts   map[string]*hostState
	leading bool
	wg      sync.WaitGroup // host changes in progress
}

type hostState struct {
	rec       director.HostRecord
	fails     int
	oks       int
	results   []Result
	changing  string
	note      string // the last note logged
	guardSaid bool   // the last-usable-host guard was logged for this run of failures
}

// New validates cfg and returns a Checker. It does no I/O.
func New(cfg Config) (*Checker, error) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Fall == 0 {
		cfg.Fall = DefaultFall
	}
	if cfg.Rise == 0 {
		cfg.Rise = DefaultRise
	}
	if cfg.Check == "" {
		cfg.Check = CheckBanner
	}
	if cfg.Protocol == "" {
		cfg.Protocol = IMAP
	}
	if cfg.History == 0 {
		cfg.History = DefaultHistory
	}
	if cfg.MoveTimeout == 0 {
		cfg.MoveTimeout = DefaultMoveTimeout
	}
	if cfg.HeloName == "" {
		cfg.HeloName = "maildirector"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var errs []error
	if cfg.Interval < 0 || cfg.Timeout < 0 || cfg.Timeout > cfg.Interval {
		errs = append(errs, fmt.Errorf("timeout %v must be positive and at most the interval %v", cfg.Timeout, cfg.Interval))
	}
	if cfg.Fall < 1 || cfg.Rise < 1 {
		errs = append(errs, errors.New("fall and rise must be at least 1"))
	}
	switch cfg.Check {
	case CheckTCP, CheckBanner, CheckLogin:
	default:
		errs = append(errs, fmt.Errorf("unknown check %q", cfg.Check))
	}
	switch cfg.Protocol {
	case IMAP, POP3, LMTP, Sieve:
	default:
		errs = append(errs, fmt.Errorf("unknown protocol %q", cfg.Protocol))
	}
	switch cfg.TLS {
	case TLSNone, TLSImplicit:
	case TLSStartTLS:
		if cfg.Check == CheckTCP {
			errs = append(errs, errors.New("tls: starttls needs the banner or login check"))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown TLS mode %q", cfg.TLS))
	}
	if cfg.Check == CheckLogin && (cfg.LoginUser == "" || cfg.LoginPassword == "" && cfg.Protocol != LMTP) {
		errs = append(errs, errors.New("the login check needs login_user and login_password (LMTP: login_user)"))
	}
	if cfg.Port == nil {
		errs = append(errs, errors.New("no port"))
	}
	if cfg.Hosts == nil || cfg.Elector == nil {
		errs = append(errs, errors.New("no store (Hosts and Elector)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	return &Checker{cfg: cfg, log: cfg.Logger, now: cfg.Now, hosts: map[string]*hostState{}}, nil
}

// Run campaigns for the checks and runs them while this gateway leads,
// until ctx ends.
func (c *Checker) Run(ctx context.Context) error {
	return c.cfg.Elector.Lead(ctx, ElectionName, c.lead)
}

// Leading says whether this gateway runs the checks now.
func (c *Checker) Leading() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

// History returns what the checker knows of each backend, by IP. Only the
// gateway that runs the checks has results; another has those of its last
// term, if any.
func (c *Checker) History() []HostHealth {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]HostHealth, 0, len(c.hosts))
	for ip, st := range c.hosts {
		out = append(out, HostHealth{
			IP: ip, Down: st.rec.Down, DownByHealth: st.rec.Down && c.cfg.Hosts.DownByHealth(st.rec),
			Failures: st.fails, Successes: st.oks, Changing: st.changing,
			Results: append([]Result(nil), st.results...),
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	return out
}

// Check runs one check of backend ip now, outside the rounds: it records
// nothing and changes nothing (tests, an operator's "check now").
func (c *Checker) Check(ctx context.Context, ip string) Result {
	start := c.now()
	note, err := c.probe(ctx, ip)
	r := Result{At: start, OK: err == nil, Latency: c.now().Sub(start), Note: note}
	if err != nil {
		r.Error = err.Error()
	}
	return r
}

// what describes the check for log lines.
func (c *Checker) what() string {
	s := c.cfg.Protocol + " " + c.cfg.Check
	switch c.cfg.TLS {
	case TLSImplicit:
		s += " over TLS"
	case TLSStartTLS:
		s += " over STARTTLS"
	}
	return s
}

// lead runs rounds while this gateway leads.
func (c *Checker) lead(ctx context.Context) {
	c.mu.Lock()
	c.leading = true
	// Counts from an earlier term are not consecutive with this one's.
	for _, st := range c.hosts {
		st.fails, st.oks, st.guardSaid = 0, 0, false
	}
	c.mu.Unlock()
	c.log.Info("health: this gateway runs the health checks", "check", c.what(),
		"interval", c.cfg.Interval, "timeout", c.cfg.Timeout, "fall", c.cfg.Fall, "rise", c.cfg.Rise)
	defer func() {
		c.wg.Wait()
		c.mu.Lock()
		c.leading = false
		c.mu.Unlock()
		c.log.Info("health: this gateway no longer runs the health checks", "reason", context.Cause(ctx))
	}()
	tick := time.NewTicker(c.cfg.Interval)
	defer tick.Stop()
	for {
		c.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// round checks every stored backend once and acts on the counts.
func (c *Checker) round(ctx context.Context) {
	sctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	hosts, err := c.cfg.Hosts.Hosts(sctx)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("health: cannot read the backends from the store; no checks this round", "reason", err)
		}
		return
	}
	results := make([]Result, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.Check(ctx, h.IP)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // leadership lost meanwhile: these results prove nothing
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool, len(hosts))
	for i, h := range hosts {
		seen[h.IP] = true
		st := c.hosts[h.IP]
		if st == nil {
			st = &hostState{}
			c.hosts[h.IP] = st
		}
		st.rec = h
		c.recordLocked(h, st, results[i])
	}
	for ip, st := range c.hosts {
		if !seen[ip] && st.changing == "" {
			delete(c.hosts, ip) // removed from the store
		}
	}
	for _, h := range hosts {
		c.decideLocked(ctx, h, hosts)
	}
}

// recordLocked adds r to h's history and counts, and logs what is news.
func (c *Checker) recordLocked(h director.HostRecord, st *hostState, r Result) {
	st.results = append(st.results, r)
	if len(st.results) > c.cfg.History {
		st.results = append(st.results[:0], st.results[len(st.results)-c.cfg.History:]...)
	}
	if r.Note != "" && r.Note != st.note {
		c.log.Error("health: the login check cannot test this backend; counted as healthy (greeting passed), fix the configuration",
			"backend", h.IP, "check", c.what(), "reason", r.Note)
	}
	st.note = r.Note
	if r.OK {
		if st.fails > 0 && !h.Down {
			c.log.Info("health: backend passes its check again", "backend", h.IP, "check", c.what(), "after_failures", st.fails)
		}
		st.oks++
		st.fails = 0
		st.guardSaid = false
		return
	}
	st.fails++
	st.oks = 0
	if !h.Down && st.fails <= c.cfg.Fall {
		c.log.Warn("health: backend failed its check", "backend", h.IP, "check", c.what(),
			"failures", st.fails, "fall", c.cfg.Fall, "reason", r.Error)
	} else {
		c.log.Debug("health: backend failed its check", "backend", h.IP, "check", c.what(), "failures", st.fails, "reason", r.Error)
	}
}

// decideLocked starts a change of h when its counts call for one.
func (c *Checker) decideLocked(ctx context.Context, h director.HostRecord, hosts []director.HostRecord) {
	st := c.hosts[h.IP]
	if st.changing != "" {
		return
	}
	switch {
	case !h.Down && st.fails >= c.cfg.Fall:
		if !c.othersUsableLocked(h, hosts) {
			if !st.guardSaid {
				st.guardSaid = true
				c.log.Error("health: backend fails its checks but is the last usable one of its group; leaving it up (down, every user of the group would be refused anyway)",
					"backend", h.IP, "tag", h.Tag, "failures", st.fails, "reason", lastError(st))
			}
			return
		}
		reason := fmt.Sprintf("%d %s checks failed in a row; the last: %s", st.fails, c.what(), lastError(st))
		c.change(ctx, st, h.IP, "down", reason)
	case h.Down && st.oks >= c.cfg.Rise && c.cfg.Hosts.DownByHealth(h):
		reason := fmt.Sprintf("%d %s checks passed in a row", st.oks, c.what())
		c.change(ctx, st, h.IP, "up", reason)
	}
}

// othersUsableLocked says whether h's group keeps a usable backend (up,
// with vhosts, not being taken down) without h.
func (c *Checker) othersUsableLocked(h director.HostRecord, hosts []director.HostRecord) bool {
	for _, o := range hosts {
		if o.IP == h.IP || o.Tag != h.Tag || o.Down || o.VHosts == 0 {
			continue
		}
		if st := c.hosts[o.IP]; st != nil && st.changing == "down" {
			continue
		}
		return true
	}
	return false
}

func lastError(st *hostState) string {
	if n := len(st.results); n > 0 {
		return st.results[n-1].Error
	}
	return ""
}

// change takes ip down or brings it up, in the background (a safe move
// waits for every gateway); the host gets no other change meanwhile.
func (c *Checker) change(ctx context.Context, st *hostState, ip, to, reason string) {
	st.changing = to
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if to == "down" {
			c.log.Warn("health: taking backend down; its users move once their sessions ended on every gateway", "backend", ip, "reason", reason)
		} else {
			c.log.Info("health: bringing backend up", "backend", ip, "reason", reason)
		}
		mctx, cancel := context.WithTimeout(ctx, c.cfg.MoveTimeout)
		var err error
		if to == "down" {
			err = c.cfg.Hosts.Down(mctx, ip, reason)
		} else {
			err = c.cfg.Hosts.Up(mctx, ip, reason)
		}
		cancel()
		c.mu.Lock()
		st.changing = ""
		if err == nil {
			// A new change needs a new run of results.
			if to == "down" {
				st.fails = 0
			} else {
				st.oks = 0
			}
		}
		c.mu.Unlock()
		switch {
		case errors.Is(err, ErrNotOurs):
			c.log.Info("health: backend left as it is: an operator changed it meanwhile", "backend", ip)
		case err != nil && to == "down":
			c.log.Error("health: taking backend down failed", "backend", ip, "reason", err)
		case err != nil:
			c.log.Error("health: bringing backend up failed", "backend", ip, "reason", err)
		case to == "down":
			c.log.Warn("health: backend is down", "backend", ip)
		default:
			c.log.Info("health: backend is up", "backend", ip)
		}
	}()
}
