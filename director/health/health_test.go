// SPDX-License-Identifier: Apache-2.0

package health

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
)

// rig is a checker over fake backends on loopback addresses and fake
// hosts; the test drives rounds itself.
type rig struct {
	t        *testing.T
	hosts    *fakeHosts
	backends map[string]*fakeBackend
	c        *Checker
	log      *logBuffer
}

var healthy = imapBackend("* OK [CAPABILITY IMAP4rev1] ready.", nil)

func broken(c *fakeConn) { c.send("* BYE Internal error") }

func newRig(t *testing.T, cfg Config, hosts ...director.Host) *rig {
	t.Helper()
	r := &rig{t: t, hosts: newFakeHosts(hosts...), backends: map[string]*fakeBackend{}, log: &logBuffer{}}
	for _, h := range hosts {
		r.backends[h.IP] = newFakeBackend(t, h.IP, healthy)
	}
	cfg.Port = func(ip string) int { return r.backends[ip].port() }
	cfg.Hosts = r.hosts
	if cfg.Elector == nil {
		cfg.Elector = &fakeElector{grant: make(chan context.Context)}
	}
	if cfg.Interval == 0 {
		cfg.Interval, cfg.Timeout = time.Second, 500*time.Millisecond
	}
	cfg.Logger = r.log.logger()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	return r
}

// round runs one round and waits for the changes it started.
func (r *rig) round() {
	r.c.round(context.Background())
	r.c.wg.Wait()
}

func (r *rig) wantCalls(want ...string) {
	r.t.Helper()
	if got := r.hosts.callList(); !slices.Equal(got, want) {
		r.t.Fatalf("store calls: got %q, want %q", got, want)
	}
}

const (
	ipA = "127.0.0.71"
	ipB = "127.0.0.72"
	ipC = "127.0.0.73"
)

func TestHysteresis(t *testing.T) {
	r := newRig(t, Config{Fall: 3, Rise: 2}, director.Host{IP: ipA}, director.Host{IP: ipB})
	r.round()
	r.wantCalls()

	// Two failures, a success, two failures: never three in a row.
	r.backends[ipA].set(broken)
	r.round()
	r.round()
	r.backends[ipA].set(healthy)
	r.round()
	r.backends[ipA].set(broken)
	r.round()
	r.round()
	r.wantCalls()
	if r.hosts.isDown(ipA) {
		t.Fatal("down after two consecutive failures")
	}
	// The third in a row takes it down, once.
	r.round()
	r.wantCalls("down " + ipA)
	if !r.hosts.isDown(ipA) {
		t.Fatal("not down after three failures")
	}
	if reason := r.hosts.reasons[0]; !strings.Contains(reason, "3 imap banner checks failed in a row; the last: ") || !strings.Contains(reason, "* BYE Internal error") {
		t.Fatalf("reason %q", reason)
	}
	r.round()
	r.round()
	r.wantCalls("down " + ipA)

	// Stopped altogether: still down, nothing more asked.
	r.backends[ipA].stop()
	r.round()
	r.wantCalls("down " + ipA)

	// Back: one success is not enough, two are.
	r.backends[ipA].start()
	r.backends[ipA].set(healthy)
	r.round()
	r.wantCalls("down " + ipA)
	r.round()
	r.wantCalls("down "+ipA, "up "+ipA)
	if r.hosts.isDown(ipA) {
		t.Fatal("still down after two successes")
	}
	if reason := r.hosts.reasons[1]; !strings.Contains(reason, "2 imap banner checks passed in a row") {
		t.Fatalf("reason %q", reason)
	}
	r.round()
	r.wantCalls("down "+ipA, "up "+ipA)
	if r.hosts.isDown(ipB) {
		t.Fatal("the healthy host went down")
	}
	for _, want := range []string{
		`msg="health: backend failed its check" backend=127.0.0.71 check="imap banner" failures=1 fall=3`,
		`msg="health: backend passes its check again" backend=127.0.0.71`,
		`msg="health: taking backend down; its users move once their sessions ended on every gateway" backend=127.0.0.71 reason="3 imap banner checks failed in a row; the last: `,
		`msg="health: backend is down" backend=127.0.0.71`,
		`msg="health: bringing backend up" backend=127.0.0.71 reason="2 imap banner checks passed in a row"`,
		`msg="health: backend is up" backend=127.0.0.71`,
	} {
		if !strings.Contains(r.log.String(), want) {
			t.Errorf("log lacks %s\n%s", want, r.log)
		}
	}
}

// A host an operator took down stays down however healthy it is; one the
// checks took down that an operator then took over stays down too.
func TestOperatorDownStaysDown(t *testing.T) {
	r := newRig(t, Config{Fall: 1, Rise: 1}, director.Host{IP: ipA}, director.Host{IP: ipB}, director.Host{IP: ipC})
	r.hosts.operator(ipA, true)
	for i := 0; i < 3; i++ {
		r.round()
	}
	r.wantCalls()
	if !r.hosts.isDown(ipA) {
		t.Fatal("an operator's down host came up")
	}
	// An operator's host that fails is left alone too (it is down already).
	r.backends[ipA].set(broken)
	r.round()
	r.wantCalls()

	// Taken down by the checks, then an operator takes it over (down by
	// the operator from then on): it stays down.
	r.backends[ipB].set(broken)
	r.round()
	r.wantCalls("down " + ipB)
	r.hosts.operator(ipB, true)
	r.backends[ipB].set(healthy)
	r.round()
	r.round()
	r.wantCalls("down " + ipB)
	if !r.hosts.isDown(ipB) {
		t.Fatal("came up after an operator took it over")
	}
}

// Up is a compare-and-set in the store: an operator's down between the
// checker's read and its write wins, and the checker leaves it so.
func TestUpLosesToOperator(t *testing.T) {
	r := newRig(t, Config{Fall: 1, Rise: 1}, director.Host{IP: ipA}, director.Host{IP: ipB})
	r.backends[ipA].set(broken)
	r.round()
	r.wantCalls("down " + ipA)
	r.backends[ipA].set(healthy)
	r.hosts.beforeUp = func() { r.hosts.operatorLocked(ipA, true) }
	r.round()
	r.wantCalls("down "+ipA, "up "+ipA)
	if !r.hosts.isDown(ipA) {
		t.Fatal("up although an operator took it down meanwhile")
	}
	if !strings.Contains(r.log.String(), "health: backend left as it is: an operator changed it meanwhile") {
		t.Fatal(r.log)
	}
	r.round()
	r.wantCalls("down "+ipA, "up "+ipA)
}

// The last usable backend of a group is never taken down by the checks:
// without it every user of the group would be refused anyway, and a
// broken check (a wrong test password) would take the whole site down.
func TestLastUsableHostStaysUp(t *testing.T) {
	r := newRig(t, Config{Fall: 1, Rise: 1},
		director.Host{IP: ipA}, director.Host{IP: ipB, Tag: "other"}, director.Host{IP: ipC, Tag: "other", VHosts: 0})
	r.hosts.mu.Lock()
	h := r.hosts.hosts[ipC]
	h.VHosts = 0 // drained: takes no users
	r.hosts.hosts[ipC] = h
	r.hosts.mu.Unlock()
	for _, ip := range []string{ipA, ipB, ipC} {
		r.backends[ip].set(broken)
	}
	r.round()
	r.round()
	// A is alone in its group, B is the only one with vhosts in its; C,
	// drained, may go.
	r.wantCalls("down " + ipC)
	if n := strings.Count(r.log.String(), "is the last usable one of its group"); n != 2 {
		t.Fatalf("the guard was logged %d times, want once per host\n%s", n, r.log)
	}
}

// A move that takes long is not started twice, and checks go on meanwhile.
func TestSlowDown(t *testing.T) {
	r := newRig(t, Config{Fall: 1, Rise: 1}, director.Host{IP: ipA}, director.Host{IP: ipB})
	r.hosts.block = make(chan struct{})
	r.backends[ipA].set(broken)
	ctx := context.Background()
	r.c.round(ctx)
	r.c.round(ctx)
	r.c.round(ctx)
	if h := r.c.History(); h[0].Changing != "down" || len(h[0].Results) != 3 {
		t.Fatalf("history during the move: %+v", h[0])
	}
	close(r.hosts.block)
	r.c.wg.Wait()
	r.wantCalls("down " + ipA)
}

// A round whose store read fails checks nothing and changes nothing.
func TestStoreUnreadable(t *testing.T) {
	r := newRig(t, Config{Fall: 1, Rise: 1}, director.Host{IP: ipA}, director.Host{IP: ipB})
	r.hosts.err = errors.New("etcd: context deadline exceeded")
	r.backends[ipA].set(broken)
	r.round()
	r.wantCalls()
	if r.backends[ipA].conns.Load() != 0 {
		t.Fatal("checked without knowing the hosts")
	}
	if !strings.Contains(r.log.String(), "cannot read the backends from the store") {
		t.Fatal(r.log)
	}
}

func TestHistory(t *testing.T) {
	r := newRig(t, Config{Fall: 2, Rise: 1, History: 3}, director.Host{IP: ipA}, director.Host{IP: ipB})
	r.round()
	r.backends[ipA].set(broken)
	for i := 0; i < 4; i++ {
		r.round()
	}
	h := r.c.History()
	if len(h) != 2 || h[0].IP != ipA || h[1].IP != ipB {
		t.Fatalf("history %+v", h)
	}
	a := h[0]
	if !a.Down || !a.DownByHealth || a.Failures != 2 || len(a.Results) != 3 {
		t.Fatalf("A: %+v", a)
	}
	for _, res := range a.Results {
		if res.OK || !strings.Contains(res.Error, "BYE") || res.Latency <= 0 || res.At.IsZero() {
			t.Fatalf("result %+v", res)
		}
	}
	if b := h[1]; b.Down || b.Successes != 5 || !b.Results[2].OK {
		t.Fatalf("B: %+v", b)
	}
	// A host removed from the store leaves the history.
	r.hosts.mu.Lock()
	delete(r.hosts.hosts, ipB)
	r.hosts.mu.Unlock()
	r.round()
	if h := r.c.History(); len(h) != 1 {
		t.Fatalf("history after removal: %+v", h)
	}
}

// The login check's misconfiguration (plaintext refused) counts as healthy
// and is logged once, clearly.
func TestLoginDisabledLoggedOnce(t *testing.T) {
	r := newRig(t, Config{Fall: 1, Rise: 1, Check: CheckLogin, LoginUser: testUser, LoginPassword: testPass},
		director.Host{IP: ipA}, director.Host{IP: ipB})
	for _, b := range r.backends {
		b.set(imapBackend("* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] ready.", nil))
	}
	r.round()
	r.round()
	r.wantCalls()
	if n := strings.Count(r.log.String(), "the login check cannot test this backend"); n != 2 {
		t.Fatalf("logged %d times, want once per host\n%s", n, r.log)
	}
	if h := r.c.History(); !h[0].Results[0].OK || !strings.Contains(h[0].Results[0].Note, "LOGINDISABLED") {
		t.Fatalf("history %+v", h[0])
	}
}

// Run checks only while leading: losing the lead stops the rounds (and a
// check in progress), winning it again resumes them with fresh counts.
func TestLeadership(t *testing.T) {
	el := &fakeElector{grant: make(chan context.Context)}
	const fall = 4
	r := newRig(t, Config{Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond, Fall: fall, Rise: 1, Elector: el},
		director.Host{IP: ipA}, director.Host{IP: ipB})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.c.Run(ctx) }()

	time.Sleep(200 * time.Millisecond)
	if n := r.backends[ipA].conns.Load(); n != 0 || r.c.Leading() {
		t.Fatalf("checked %d times without leading", n)
	}
	term, lose := context.WithCancel(context.Background())
	el.grant <- term
	waitFor(t, "checks while leading", func() bool { return r.backends[ipA].conns.Load() >= 3 })
	if !r.c.Leading() {
		t.Fatal("Leading() false while checks run")
	}
	// A failure or two (of four needed), then the lead is lost: no more
	// checks, and nothing changed.
	r.backends[ipA].set(broken)
	waitFor(t, "a failure", func() bool { h := r.c.History(); return h[0].Failures >= 1 })
	lose()
	waitFor(t, "the loop to stop", func() bool { return !r.c.Leading() })
	n := r.backends[ipA].conns.Load() + r.backends[ipB].conns.Load()
	time.Sleep(300 * time.Millisecond)
	if m := r.backends[ipA].conns.Load() + r.backends[ipB].conns.Load(); m != n {
		t.Fatalf("%d checks after the lead was lost", m-n)
	}
	r.wantCalls()

	// A new term counts afresh: the failures of the last one do not add
	// to this one's, so it takes fall checks of its own to go down.
	before := r.backends[ipA].conns.Load()
	var atDown atomic.Int64
	r.hosts.mu.Lock()
	r.hosts.onDown = func(string) { atDown.Store(r.backends[ipA].conns.Load()) }
	r.hosts.mu.Unlock()
	term2, lose2 := context.WithCancel(context.Background())
	defer lose2()
	el.grant <- term2
	waitFor(t, "down in the new term", func() bool { return r.hosts.isDown(ipA) })
	if checks := atDown.Load() - before; checks < fall {
		t.Fatalf("down after %d checks in the new term, want %d", checks, fall)
	}
	for _, want := range []string{"health: this gateway runs the health checks", "health: this gateway no longer runs the health checks"} {
		if !strings.Contains(r.log.String(), want) {
			t.Errorf("log lacks %q", want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// StoreHosts over the director's memory store: down by health is a safe
// move recorded as the checks', with the reason in the health history; an
// operator's down is not the checks' to undo.
func TestStoreHosts(t *testing.T) {
	st := newMemStore(t, director.Host{IP: ipA, VHosts: 100}, director.Host{IP: ipB, VHosts: 100})
	sh := StoreHosts{Store: st, Gateway: "gw1"}
	ctx := context.Background()
	if err := sh.Down(ctx, ipA, "2 imap banner checks failed in a row"); err != nil {
		t.Fatal(err)
	}
	h := hostOf(t, sh, ipA)
	if !h.Down || h.DownBy != director.DownByHealth || !sh.DownByHealth(h) || len(h.Health) != 1 ||
		h.Health[0].Up || h.Health[0].Reason != "2 imap banner checks failed in a row (checked by gw1)" {
		t.Fatalf("after Down: %+v", h)
	}
	if err := sh.Up(ctx, ipA, "2 imap banner checks passed in a row"); err != nil {
		t.Fatal(err)
	}
	if h := hostOf(t, sh, ipA); h.Down || len(h.Health) != 2 || !h.Health[1].Up {
		t.Fatalf("after Up: %+v", h)
	}
	if err := director.HostDown(ctx, st, ipB, "cli:root@vm"); err != nil {
		t.Fatal(err)
	}
	if err := sh.Down(ctx, ipB, "test"); err != nil {
		t.Fatal(err)
	}
	if h := hostOf(t, sh, ipB); h.DownBy != director.DownByOperator || h.ChangedBy != "cli:root@vm" || sh.DownByHealth(h) {
		t.Fatalf("Down of an operator's down host changed it: %+v", h)
	}
	if err := sh.Up(ctx, ipB, "test"); !errors.Is(err, ErrNotOurs) {
		t.Fatalf("Up of an operator's down host: %v", err)
	}
	if h := hostOf(t, sh, ipB); !h.Down {
		t.Fatalf("an operator's down host came up: %+v", h)
	}
	if err := sh.Down(ctx, "127.0.0.99", "test"); !errors.Is(err, director.ErrNotFound) {
		t.Fatalf("Down of an unknown host: %v", err)
	}
}

func hostOf(t *testing.T, h Hosts, ip string) director.HostRecord {
	t.Helper()
	hosts, err := h.Hosts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range hosts {
		if x.IP == ip {
			return x
		}
	}
	t.Fatalf("no host %s", ip)
	return director.HostRecord{}
}

func newMemStore(t *testing.T, hosts ...director.Host) director.Store {
	t.Helper()
	st := memory.New()
	if err := st.Start(context.Background(), hosts, "test"); err != nil {
		t.Fatal(err)
	}
	return st
}
