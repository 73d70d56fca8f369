// SPDX-License-Identifier: Apache-2.0

package integration

// The seed memo's maintenance of a backend (take it out, work on it, put
// it back), replayed on two gateways sharing an etcd: step by step with
// Debian's unmodified `doveadm director` against one gateway's admin
// socket, as a Director site does it; as one `maildirector director
// drain`; and a drain that outlives a gateway SIGKILLed under it, or its
// own command killed and run again.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// maintCluster is two gateways (gw1, gw2) on one etcd in front of two
// Dovecot backends: x, the one taken out for maintenance, and other.
type maintCluster struct {
	*env
	bin      string
	x, other string
	xi       int // x's index in env.backends
	gws      []*clusterGW
	socks    []string // each gateway's admin socket, when asked for
	// onX are users whose ring backend (both hosts at 100 vhosts) is x,
	// none of them logged in yet.
	onX []string
}

func startMaintCluster(t *testing.T, ips []string, prefix string, sockets bool) *maintCluster {
	t.Helper()
	e := startBackends(t, ips, 120)
	etcd := harness.StartEtcd(t, harness.EtcdOptions{Dir: filepath.Join(e.dir, "etcd")})
	m := &maintCluster{env: e, bin: gatewayBinary(t), x: ips[0], other: ips[1], xi: 0}
	for _, name := range []string{"gw1", "gw2"} {
		d := fmt.Sprintf("  store: etcd\n  lease_ttl: 3s\n  etcd: {endpoints: [%s], prefix: /%s/}\n", etcd.ClientURL(), prefix)
		if sockets {
			sock := filepath.Join(shortTempDir(t), "director-admin")
			m.socks = append(m.socks, sock)
			// The text is added at the end of the director section: a
			// top-level admin section may follow it.
			d += "admin:\n  socket: " + sock + "\n"
		}
		m.gws = append(m.gws, e.newClusterGW(t, clusterGWConf{name: name, backends: ips, director: d}))
	}
	startAll(t, m.bin, m.gws...)
	for _, sock := range m.socks {
		waitFor(t, func() bool { _, err := os.Stat(sock); return err == nil })
	}
	for i := 0; i < 120; i++ {
		if e.ringBackend(userName(i)) == m.x {
			m.onX = append(m.onX, userName(i))
		}
	}
	if len(m.onX) < 10 {
		t.Fatalf("only %d of 120 users hash to %s", len(m.onX), m.x)
	}
	return m
}

// stepClock logs each step of a procedure with the time since the start
// and since the previous step.
type stepClock struct {
	t           *testing.T
	start, last time.Time
	lines       []string
}

func newStepClock(t *testing.T) *stepClock {
	now := time.Now()
	return &stepClock{t: t, start: now, last: now}
}

func (c *stepClock) mark(format string, args ...any) {
	c.t.Helper()
	now := time.Now()
	l := fmt.Sprintf("[%6.2fs, step %5.2fs] %s", now.Sub(c.start).Seconds(), now.Sub(c.last).Seconds(), fmt.Sprintf(format, args...))
	c.lines = append(c.lines, l)
	c.t.Log(l)
	c.last = now
}

// summary logs every step again, in one block.
func (c *stepClock) summary() {
	c.t.Helper()
	c.t.Logf("steps:\n%s", strings.Join(c.lines, "\n"))
}

// watchOneBackend samples every backend's anvil about every 20 ms until
// the returned function is called, which fails the test if a user ever
// had sessions on two backends at once and returns the samples taken.
// e.backends must not change while it runs.
func watchOneBackend(t *testing.T, e *env) func() int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var samples int
	var bad []string
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			now, err := e.sessionsNow(ctx)
			if err == nil {
				samples++
				for u, per := range now {
					if len(per) > 1 {
						bad = append(bad, fmt.Sprintf("%s on %v", u, backendsOf(per)))
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() int {
		t.Helper()
		cancel()
		<-done
		if len(bad) > 0 {
			t.Errorf("users on two backends at once (%d samples): %v", len(bad), bad)
		}
		return samples
	}
}

// mustNoop fails the test unless c's session still answers.
func mustNoop(t *testing.T, c *tclient, what string) {
	t.Helper()
	if st, err := c.do("NOOP"); err != nil || !strings.HasPrefix(st, "OK") {
		t.Errorf("%s: the session ended: %q %v", what, st, err)
	}
}

// wantSessionsOn fails the test unless user has sessions on ip and
// nowhere else, by the backends' own account.
func wantSessionsOn(t *testing.T, e *env, user, ip, what string) {
	t.Helper()
	if got := backendsWithSessions(t, e, user); !slices.Equal(got, []string{ip}) {
		t.Errorf("%s: %s has sessions on %v, want %s only", what, user, got, ip)
	}
}

// nobodyOn fails the test if a backend's anvil, or `doveadm who` on the
// backend itself (the memo's check), shows a session on ip.
func nobodyOn(t *testing.T, e *env, ip, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now, err := e.sessionsNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for u, per := range now {
		if per[ip] > 0 {
			t.Errorf("%s: %s still has %d sessions on %s", what, u, per[ip], ip)
		}
	}
	who, err := e.backendByIP(ip).Who()
	if err != nil {
		t.Fatal(err)
	}
	if len(who) > 0 {
		t.Errorf("%s: doveadm who on %s lists %v", what, ip, who)
	}
}

// loginSoon logs user in through addr, retrying while the gateway answers
// with a temporary failure (a gateway just restarted serves once it has
// its lease and a fresh copy of the store).
func loginSoon(t *testing.T, addr, user string) *tclient {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := tdial(addr)
		if err == nil {
			st, lerr := c.login(user)
			if lerr == nil && strings.HasPrefix(st, "OK") {
				return c
			}
			c.close()
			if lerr == nil && !strings.Contains(st, "UNAVAILABLE") {
				t.Fatalf("login %s through %s: %q", user, addr, st)
			}
			err = fmt.Errorf("%q %v", st, lerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("login %s through %s: %v", user, addr, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestSevenStepMaintenanceDoveadm replays the seed memo's maintenance of a
// backend step by step, as a Director site would, with Debian's
// unmodified `doveadm director` against gw1's admin socket only, while
// users hold IMAP sessions on the backend through both gateways:
//
//	update X 0 → (wait) → flush X → kick USER → who → stop X → update X 100
//
// Every change must act on both gateways: the held sessions through gw2
// end on gw1's flush, gw2 sends new users elsewhere after gw1's update.
func TestSevenStepMaintenanceDoveadm(t *testing.T) {
	m := startMaintCluster(t, []string{"127.0.0.81", "127.0.0.82"}, "mdit-7doveadm", true)
	x, other := m.x, m.other
	a1 := &adminEnv{env: m.env, sock: m.socks[0]} // every change goes through gw1's socket
	a2 := &adminEnv{env: m.env, sock: m.socks[1]} // gw2's, to read what the other gateway says
	held, fresh, stopUser, after := m.onX[0:4], m.onX[4:6], m.onX[6], m.onX[7:9]
	expect := map[string]string{} // user -> the backend its assignment names at the end
	clk := newStepClock(t)

	// Users at work on x, through both gateways.
	sess := map[string]*tclient{}
	via := map[string]*clusterGW{}
	for i, u := range held {
		via[u] = m.gws[i%2]
		sess[u] = mustLogin(t, via[u].imapAddr, u)
		defer sess[u].close()
	}
	for _, u := range held {
		wantSessionsOn(t, m.env, u, x, "before the maintenance")
	}
	t.Logf("before:\n$ doveadm director status\n%s", a1.mustDoveadm(t, "status"))
	stopWatch := watchOneBackend(t, m.env)
	clk.mark("setup: %d users with IMAP sessions on %s, through gw1 and gw2", len(held), x)

	// Memo step 2: no new users for x.
	a1.mustDoveadm(t, "update", x, "0")
	for i, a := range []*adminEnv{a1, a2} {
		if r := a.status(t)[x]; r.vhosts != "0" || r.state != "up" {
			t.Errorf("status through gw%d's socket after update %s 0: %+v", i+1, x, r)
		}
	}
	clk.mark("doveadm director update %s 0", x)
	time.Sleep(time.Second) // gw2's copy of the store follows its watch
	for i, u := range fresh {
		c := mustLogin(t, m.gws[i%2].imapAddr, u)
		wantSessionsOn(t, m.env, u, other, fmt.Sprintf("a new user through gw%d after update %s 0", i%2+1, x))
		c.do("LOGOUT")
		c.close()
		expect[u] = other
	}
	for _, u := range held {
		mustNoop(t, sess[u], "a held session after update 0")
	}
	clk.mark("checked: %d new users went to %s through both gateways; the held sessions stay", len(fresh), other)

	// Memo's wait: users with an assignment stay on x; one that opens
	// another session (through the other gateway) gets x again, sticky,
	// as with Director: why the memo flushes next.
	extra := mustLogin(t, m.gws[1].imapAddr, held[0])
	defer extra.close()
	wantSessionsOn(t, m.env, held[0], x, "a second session of a held user while x has 0 vhosts")
	for i, a := range []*adminEnv{a1, a2} {
		if cur, hashed, _ := a.userStatus(t, held[0]); cur != x || hashed != other {
			t.Errorf("status %s through gw%d's socket: current %s, hashed %s; want %s, %s", held[0], i+1, cur, hashed, x, other)
		}
	}
	t.Logf("during the wait:\n$ doveadm director status %s\n%s", held[0], a1.mustDoveadm(t, "status", held[0]))
	clk.mark("wait: %s's new session through gw2 is on %s too (sticky)", held[0], x)

	// Memo step 3: flush x. The held sessions end on both gateways
	// before anyone is placed elsewhere; logged in again, they are on
	// the other backend.
	logins := m.backendLogins(len(held) + len(fresh) + 1)
	t0 := time.Now()
	out := a1.mustDoveadm(t, "flush", x)
	flushTook := time.Since(t0)
	ended := []*tclient{extra}
	for _, u := range held {
		ended = append(ended, sess[u])
	}
	for _, c := range ended {
		c.conn.SetDeadline(time.Now().Add(5 * time.Second))
		if st, err := c.do("NOOP"); err == nil && strings.HasPrefix(st, "OK") {
			t.Errorf("a held session on %s survived doveadm director flush (%q)", x, out)
		}
		c.close()
	}
	clk.mark("doveadm director flush %s: OK after %v; all %d held sessions (gw1 and gw2) had ended by then", x, flushTook.Round(time.Millisecond), len(ended))
	for _, u := range held {
		sess[u] = mustLogin(t, via[u].imapAddr, u)
		defer sess[u].close()
		wantSessionsOn(t, m.env, u, other, "logged in again after the flush")
		expect[u] = other
	}
	relogins := m.backendLogins(len(held) + len(fresh) + 1 + len(held))
	for _, u := range held {
		if relogins[u][x] != logins[u][x] || relogins[u][other] == 0 {
			t.Errorf("%s: logins before the flush %v, after %v; want none more on %s", u, logins[u], relogins[u], x)
		}
		if cur, _, _ := a2.userStatus(t, u); cur != other {
			t.Errorf("status %s through gw2's socket after the flush: current %s, want %s", u, cur, other)
		}
	}
	clk.mark("checked: the %d users logged in again through their gateways, on %s, never on %s (backend logs, anvil)", len(held), other, x)

	// Memo step 4: kick. A session through gw2 ends on a command given to
	// gw1; the user keeps its backend.
	kicked := held[1]
	a1.mustDoveadm(t, "kick", kicked)
	waitEnded(t, sess[kicked], "doveadm director kick "+kicked)
	if cur, _, _ := a1.userStatus(t, kicked); cur != other {
		t.Errorf("status %s after the kick: current %s, want %s (a kick moves nobody)", kicked, cur, other)
	}
	sess[kicked] = mustLogin(t, via[kicked].imapAddr, kicked)
	defer sess[kicked].close()
	wantSessionsOn(t, m.env, kicked, other, "logged in again after the kick")
	clk.mark("doveadm director kick %s: its session through %s ended; logged in again on %s", kicked, via[kicked].name, other)

	// doveadm who: nobody on x.
	nobodyOn(t, m.env, x, "after flush and kick")
	for i, a := range []*adminEnv{a1, a2} {
		if r := a.status(t)[x]; r.users != "0" {
			t.Errorf("status through gw%d's socket: %s has %s users, want 0", i+1, x, r.users)
		}
	}
	samples := stopWatch()
	clk.mark("who: nobody on %s (anvil of both backends, doveadm who on %s; %d samples since the start: never a user on two backends)", x, x, samples)

	// Stop the host. The gateways go on without it.
	m.backendByIP(x).Stop()
	c := mustLogin(t, m.gws[1].imapAddr, stopUser)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	onOther, err := m.backendByIP(other).Sessions(ctx) // x's anvil is gone with it
	cancel()
	if err != nil || onOther[stopUser] != 1 {
		t.Errorf("a new user while %s is stopped: %s's anvil gives it %d sessions (%v), want 1", x, other, onOther[stopUser], err)
	}
	c.do("LOGOUT")
	c.close()
	expect[stopUser] = other
	for _, u := range held {
		mustNoop(t, sess[u], "a session on "+other+" while "+x+" is stopped")
	}
	clk.mark("stopped Dovecot on %s; a new user logged in on %s; the sessions there go on", x, other)
	restartBackend(t, m.env, m.xi)
	clk.mark("maintenance done: Dovecot on %s started again", x)

	// Memo step 6: x takes new users again.
	a1.mustDoveadm(t, "update", x, "100")
	for i, a := range []*adminEnv{a1, a2} {
		if r := a.status(t)[x]; r.vhosts != "100" || r.state != "up" {
			t.Errorf("status through gw%d's socket after update %s 100: %+v", i+1, x, r)
		}
	}
	time.Sleep(time.Second)
	for i, u := range after {
		c := mustLogin(t, m.gws[i%2].imapAddr, u)
		defer c.close()
		wantSessionsOn(t, m.env, u, x, fmt.Sprintf("a new user through gw%d after update %s 100", i%2+1, x))
		expect[u] = x
	}
	// Nobody moves back: a user now on the other backend stays there.
	back := mustLogin(t, m.gws[1].imapAddr, held[2])
	wantSessionsOn(t, m.env, held[2], other, "a second session after update 100")
	back.close()
	clk.mark("doveadm director update %s 100: new users land on %s through both gateways; the others stay on %s", x, x, other)

	// doveadm director status, as an operator reads it at the end.
	final := a1.mustDoveadm(t, "status")
	t.Logf("after:\n$ doveadm director status\n%s", final)
	want := map[string]int{}
	for _, ip := range expect {
		want[ip]++
	}
	for i, a := range []*adminEnv{a1, a2} {
		rows := a.status(t)
		if len(rows) != 2 {
			t.Errorf("status through gw%d's socket lists %d backends", i+1, len(rows))
		}
		for _, ip := range []string{x, other} {
			if r := rows[ip]; r.vhosts != "100" || r.state != "up" || r.users != strconv.Itoa(want[ip]) {
				t.Errorf("status through gw%d's socket: %s %+v, want 100 vhosts, up, %d users", i+1, ip, r, want[ip])
			}
		}
	}
	for u, ip := range expect {
		if cur, _, _ := a1.userStatus(t, u); cur != ip {
			t.Errorf("status %s: current %s, want %s", u, cur, ip)
		}
	}
	for _, g := range m.gws[:1] {
		for _, cmd := range []string{"HOST-UPDATE", "HOST-RESET-USERS", "USER-KICK"} {
			if !strings.Contains(g.log(), `msg="admin: `+cmd+`" by="admin-socket:`) {
				t.Errorf("gateway %s did not log who sent %s", g.name, cmd)
			}
		}
	}
	clk.mark("doveadm director status checked through both sockets")
	clk.summary()
}

// TestSevenStepMaintenanceDrain is the same maintenance as one command:
// `maildirector director drain --kick-after 3s X` while users hold
// sessions on X through both gateways exits 0 with nobody on X; X is
// stopped and started again; `undrain` lets new users land on it.
func TestSevenStepMaintenanceDrain(t *testing.T) {
	m := startMaintCluster(t, []string{"127.0.0.83", "127.0.0.84"}, "mdit-7drain", false)
	x, other := m.x, m.other
	gw1, gw2 := m.gws[0], m.gws[1]
	held, during, after := m.onX[0:4], m.onX[4:6], m.onX[6:8]
	clk := newStepClock(t)

	sess := map[string]*tclient{}
	via := map[string]*clusterGW{}
	for i, u := range held {
		via[u] = m.gws[i%2]
		sess[u] = mustLogin(t, via[u].imapAddr, u)
		defer sess[u].close()
		wantSessionsOn(t, m.env, u, x, "before the drain")
	}
	stopWatch := watchOneBackend(t, m.env)
	clk.mark("setup: %d users with IMAP sessions on %s, through gw1 and gw2", len(held), x)

	type result struct {
		out string
		err error
	}
	drained := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := directorCLIWithin(m.bin, gw1.conf(), 60*time.Second, "drain", "--kick-after", "3s", "--timeout", "30s", x)
		drained <- result{out, err}
	}()
	waitFor(t, func() bool { return hostState(t, m.bin, gw2.conf(), x).VHosts == 0 })
	time.Sleep(time.Second) // both gateways see the drained ring
	for i, u := range during {
		c := mustLogin(t, m.gws[i%2].imapAddr, u)
		wantSessionsOn(t, m.env, u, other, fmt.Sprintf("a new user through gw%d during the drain", i%2+1))
		c.do("LOGOUT")
		c.close()
	}
	if time.Since(start) < 2500*time.Millisecond {
		for _, u := range held {
			mustNoop(t, sess[u], "a held session before --kick-after")
		}
	} else {
		t.Logf("too late to see the held sessions before --kick-after (%v)", time.Since(start).Round(time.Millisecond))
	}
	clk.mark("drain started: %s drained, new users went to %s through both gateways", x, other)

	var res result
	select {
	case res = <-drained:
	case <-time.After(40 * time.Second):
		t.Fatal("the drain did not finish")
	}
	took := time.Since(start)
	t.Logf("$ maildirector director drain --kick-after 3s --timeout 30s %s\n%s", x, res.out)
	if res.err != nil {
		t.Fatalf("drain: %v", res.err)
	}
	if took < 3*time.Second {
		t.Errorf("the drain finished in %v, before --kick-after", took)
	}
	if !strings.Contains(res.out, x+" is empty") || !strings.Contains(res.out, "remaining users moved") {
		t.Errorf("the drain's output lacks the kick or the end:\n%s", res.out)
	}
	for _, u := range held {
		c := sess[u]
		c.conn.SetDeadline(time.Now().Add(5 * time.Second))
		if st, err := c.do("NOOP"); err == nil && strings.HasPrefix(st, "OK") {
			t.Errorf("%s's session through %s survived the drain", u, via[u].name)
		}
		c.close()
	}
	nobodyOn(t, m.env, x, "after the drain")
	clk.mark("drain exited 0 after %v: the held sessions ended on both gateways, nobody on %s", took.Round(time.Millisecond), x)

	for _, u := range held {
		sess[u] = mustLogin(t, via[u].imapAddr, u)
		defer sess[u].close()
		wantSessionsOn(t, m.env, u, other, "logged in again after the drain")
	}
	logins := m.backendLogins(2*len(held) + len(during))
	for _, u := range append(slices.Clone(held), during...) {
		want := 0
		if slices.Contains(held, u) {
			want = 1
		}
		if logins[u][x] != want {
			t.Errorf("%s: logins %v; want %d on %s", u, logins[u], want, x)
		}
	}
	samples := stopWatch()
	clk.mark("the held users logged in again on %s; %d anvil samples: never a user on two backends", other, samples)

	m.backendByIP(x).Stop()
	if h := hostState(t, m.bin, gw2.conf(), x); !h.Drained || h.VHosts != 0 || h.DrainedFrom != 100 {
		t.Errorf("%s while stopped: %+v, want drained from 100", x, h)
	}
	restartBackend(t, m.env, m.xi)
	clk.mark("stopped and started Dovecot on %s; it stayed drained", x)

	if out, err := directorCLI(m.bin, gw2.conf(), "undrain", x); err != nil {
		t.Fatalf("undrain: %v\n%s", err, out)
	}
	if h := hostState(t, m.bin, gw1.conf(), x); h.Drained || h.VHosts != 100 {
		t.Errorf("%s after undrain: %+v, want 100 vhosts", x, h)
	}
	time.Sleep(time.Second)
	for i, u := range after {
		c := mustLogin(t, m.gws[i%2].imapAddr, u)
		defer c.close()
		wantSessionsOn(t, m.env, u, x, fmt.Sprintf("a new user through gw%d after undrain", i%2+1))
	}
	wantSessionsOn(t, m.env, held[0], other, "a moved user after undrain (nobody moves back)")
	clk.mark("undrain %s: new users land on it again through both gateways", x)
	clk.summary()
}

// lockedBuffer is a bytes.Buffer a running command writes while the test
// reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// drainRun is a `maildirector director drain` running in the background.
type drainRun struct {
	cmd   *exec.Cmd
	out   lockedBuffer
	done  chan struct{}
	code  int
	start time.Time
}

func startDrain(t *testing.T, bin, conf string, args ...string) *drainRun {
	t.Helper()
	r := &drainRun{done: make(chan struct{}), start: time.Now()}
	r.cmd = exec.Command(bin, append([]string{"director", "drain", "-c", conf}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.cmd.Wait()
		r.code = r.cmd.ProcessState.ExitCode()
		close(r.done)
	}()
	t.Cleanup(func() {
		select {
		case <-r.done:
		default:
			r.cmd.Process.Kill()
			<-r.done
		}
	})
	return r
}

func (r *drainRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// wait waits for the command's end and returns its exit code.
func (r *drainRun) wait(t *testing.T, within time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
		return r.code
	case <-time.After(within):
		t.Fatalf("the drain still runs after %v:\n%s", within, r.out.String())
		return -1
	}
}

var drainProgressRe = regexp.MustCompile(`(?m)^\S+ drained \S+: (\d+) sessions, (\d+) deliveries in flight, (\d+) users assigned \((\d+) gateways\)`)

// waitProgress waits until a progress line of the drain has the given
// sessions and gateways, and returns it.
func (r *drainRun) waitProgress(t *testing.T, sessions, gateways int, within time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		for _, m := range drainProgressRe.FindAllStringSubmatch(r.out.String(), -1) {
			if m[1] == strconv.Itoa(sessions) && m[4] == strconv.Itoa(gateways) {
				return m[0]
			}
		}
		if r.exited() {
			t.Fatalf("the drain exited (%d) before showing %d sessions on %d gateways:\n%s", r.code, sessions, gateways, r.out.String())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no progress line with %d sessions on %d gateways after %v:\n%s", sessions, gateways, within, r.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDrainSurvivesAGatewayDeath: a drain waiting (no --kick-after) on
// sessions held on X through gw1 and gw2 goes on when gw1 is SIGKILLed
// (its sessions die with it), and completes once gw2's sessions on X end.
// Then a drain whose own command is killed leaves the host drained, and
// run again completes.
func TestDrainSurvivesAGatewayDeath(t *testing.T) {
	m := startMaintCluster(t, []string{"127.0.0.85", "127.0.0.86"}, "mdit-drainkill", false)
	x, other := m.x, m.other
	gw1, gw2 := m.gws[0], m.gws[1]
	clk := newStepClock(t)

	var on1, on2 []*tclient
	for i, u := range m.onX[0:4] {
		c := mustLogin(t, m.gws[i%2].imapAddr, u)
		defer c.close()
		wantSessionsOn(t, m.env, u, x, "before the drain")
		if i%2 == 0 {
			on1 = append(on1, c)
		} else {
			on2 = append(on2, c)
		}
	}
	clk.mark("setup: 2 sessions on %s through gw1, 2 through gw2", x)

	d := startDrain(t, m.bin, gw2.conf(), "--timeout", "60s", x)
	line := d.waitProgress(t, 4, 2, 10*time.Second)
	clk.mark("drain (no --kick-after) waits: %q", line)

	gw1.kill()
	for _, c := range on1 {
		waitEnded(t, c, "a session through the SIGKILLed gw1")
	}
	waitFor(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		now, err := m.sessionsNow(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, per := range now {
			n += per[x]
		}
		return n == len(on2)
	})
	clk.mark("gw1 SIGKILLed: its 2 sessions on %s are gone (anvil)", x)
	line = d.waitProgress(t, 2, 1, 15*time.Second)
	if d.exited() {
		t.Fatalf("the drain ended while gw2 still had sessions on %s:\n%s", x, d.out.String())
	}
	for _, c := range on2 {
		mustNoop(t, c, "a session through gw2 after gw1 died")
	}
	clk.mark("the drain goes on without gw1: %q", line)

	for _, c := range on2 {
		c.do("LOGOUT")
		c.close()
	}
	closed := time.Now()
	if code := d.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("the drain exited %d:\n%s", code, d.out.String())
	}
	t.Logf("$ maildirector director drain --timeout 60s %s\n%s", x, d.out.String())
	if !strings.Contains(d.out.String(), x+" is empty") {
		t.Errorf("the drain's output lacks its end")
	}
	nobodyOn(t, m.env, x, "after the drain")
	clk.mark("gw2's sessions closed: the drain exited 0 %v later (%v in all)", time.Since(closed).Round(time.Millisecond), time.Since(d.start).Round(time.Millisecond))

	// A drain interrupted, and run again.
	if err := gw1.start(m.bin); err != nil {
		t.Fatal(err)
	}
	if out, err := directorCLI(m.bin, gw2.conf(), "undrain", x); err != nil {
		t.Fatalf("undrain: %v\n%s", err, out)
	}
	time.Sleep(time.Second)
	var held []*tclient
	for i, u := range m.onX[4:6] {
		c := loginSoon(t, m.gws[i%2].imapAddr, u)
		defer c.close()
		wantSessionsOn(t, m.env, u, x, "after undrain")
		held = append(held, c)
	}
	clk.mark("gw1 restarted, %s undrained, one session on it through each gateway", x)

	d = startDrain(t, m.bin, gw1.conf(), "--timeout", "60s", x)
	d.waitProgress(t, 2, 2, 10*time.Second)
	d.cmd.Process.Kill()
	d.wait(t, 5*time.Second)
	if h := hostState(t, m.bin, gw1.conf(), x); !h.Drained || h.VHosts != 0 || h.DrainedFrom != 100 {
		t.Errorf("%s after its drain was killed: %+v, want drained from 100", x, h)
	}
	c := mustLogin(t, gw2.imapAddr, m.onX[6])
	wantSessionsOn(t, m.env, m.onX[6], other, "a new user while the killed drain's host stays drained")
	c.do("LOGOUT")
	c.close()
	for _, c := range held {
		mustNoop(t, c, "a held session after the drain command was killed")
	}
	clk.mark("drain command SIGKILLed: %s stays drained, new users go to %s, the held sessions stay", x, other)

	d = startDrain(t, m.bin, gw2.conf(), "--timeout", "60s", x)
	line = d.waitProgress(t, 2, 2, 10*time.Second)
	for _, c := range held {
		c.do("LOGOUT")
		c.close()
	}
	closed = time.Now()
	if code := d.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("the drain run again exited %d:\n%s", code, d.out.String())
	}
	t.Logf("$ maildirector director drain --timeout 60s %s  # again\n%s", x, d.out.String())
	nobodyOn(t, m.env, x, "after the drain run again")
	clk.mark("drain run again (%q) exited 0 %v after the sessions closed", line, time.Since(closed).Round(time.Millisecond))

	if out, err := directorCLI(m.bin, gw1.conf(), "undrain", x); err != nil {
		t.Fatalf("undrain: %v\n%s", err, out)
	}
	if h := hostState(t, m.bin, gw2.conf(), x); h.Drained || h.VHosts != 100 {
		t.Errorf("%s after undrain: %+v, want its 100 vhosts back", x, h)
	}
	clk.mark("undrain: %s has its 100 vhosts back", x)
	clk.summary()
}
