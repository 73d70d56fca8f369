// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/integration/harness"
)

// The cluster tests: three gateways share one store and send every user
// to one backend, the one Dovecot 2.3's ring names for the stored hosts,
// whichever gateway the user comes through, whatever a gateway's file
// says, across a SIGKILL; a new vhost count sends new users along the new
// ring while known users stay where they are.

var clusterIPs = []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}

const (
	clusterOld = 500 // users placed before the vhost change
	clusterNew = 100 // users seen only after it
)

// TestClusterOnEtcd: three gateways on one external etcd (Debian's).
func TestClusterOnEtcd(t *testing.T) {
	e := startBackends(t, clusterIPs, clusterOld+clusterNew)
	etcd := harness.StartEtcd(t, harness.EtcdOptions{Dir: filepath.Join(e.dir, "etcd")})
	bin := gatewayBinary(t)
	store := fmt.Sprintf("  store: etcd\n  lease_ttl: 5s\n  etcd: {endpoints: [%s], prefix: /mdit-cluster/}\n", etcd.ClientURL())
	var gws []*clusterGW
	for i := 0; i < 3; i++ {
		backends := clusterIPs
		if i == 2 {
			backends = clusterIPs[:2] // fewer: the store wins
		}
		name := fmt.Sprintf("gw%d", i)
		g := e.newClusterGW(t, clusterGWConf{name: name, backends: backends, director: store})
		gws = append(gws, g)
	}
	// gw0 seeds the store with all three backends; the others join it.
	startAll(t, bin, gws[0])
	startAll(t, bin, gws[1], gws[2])
	runClusterScenario(t, &cluster{e: e, bin: bin, gws: gws})
}

// TestClusterEmbeddedPeers: three gateways whose embedded etcd members
// peer, no etcd to install. gw0 and gw1 start together (a peered member
// serves once a quorum, two of three, runs), so that the store is seeded
// from gw0's or gw1's file, both complete; gw2, whose file lists fewer
// backends, joins after.
func TestClusterEmbeddedPeers(t *testing.T) {
	e := startBackends(t, clusterIPs, clusterOld+clusterNew)
	bin := gatewayBinary(t)
	var peers []string
	var initial []string
	for i := 0; i < 3; i++ {
		ip := fmt.Sprintf("127.0.0.%d", 41+i)
		port, err := harness.FreePort(ip)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, fmt.Sprintf("http://%s:%d", ip, port))
		initial = append(initial, fmt.Sprintf("gw%d=%s", i, peers[i]))
	}
	var gws []*clusterGW
	for i := 0; i < 3; i++ {
		backends := clusterIPs
		if i == 2 {
			backends = clusterIPs[:2]
		}
		name := fmt.Sprintf("gw%d", i)
		store := fmt.Sprintf("  store: embedded\n  lease_ttl: 5s\n  embedded:\n    name: %s\n    peer_urls: [%s]\n    initial_cluster: %s\n",
			name, peers[i], strings.Join(initial, ","))
		g := e.newClusterGW(t, clusterGWConf{name: name, backends: backends, director: store})
		gws = append(gws, g)
	}
	start := time.Now()
	startAll(t, bin, gws[0], gws[1])
	t.Logf("gw0 and gw1 (peered embedded members) serving after %v", time.Since(start).Round(time.Millisecond))
	startAll(t, bin, gws[2])
	runClusterScenario(t, &cluster{e: e, bin: bin, gws: gws})
}

// cluster is three gateways on one store in front of e's backends.
type cluster struct {
	e   *env
	bin string
	gws []*clusterGW

	mu       sync.Mutex
	expected map[string]string // user -> the backend it must be on
	logins   int               // successful logins, all rounds

	retries, tempFails atomic.Int64
}

// openSession is a session a round keeps open.
type openSession struct {
	user int
	c    *tclient
}

// roundOpts describe one round of logins.
type roundOpts struct {
	users   []int                 // who logs in, in random order
	keep    func(i int) bool      // the session stays open
	pick    func(i int) int       // the gateway (nil: a random one)
	expect  func(u string) string // the backend a user seen first now must get
	midway  func()                // run once half the logins are done
	workers int
}

// round logs the users in, each through its gateway (login SELECTs INBOX)
// and logs out unless the session is kept. A gateway that cannot be reached
// (killed) or answers [UNAVAILABLE] is retried through the next one.
func (cl *cluster) round(t *testing.T, o roundOpts) []openSession {
	t.Helper()
	order := append([]int(nil), o.users...)
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	if o.workers == 0 {
		o.workers = 12
	}
	var (
		mu   sync.Mutex
		kept []openSession
		done atomic.Int64
		once sync.Once
		wg   sync.WaitGroup
	)
	jobs := make(chan int)
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				u := userName(i)
				cl.mu.Lock()
				if _, ok := cl.expected[u]; !ok {
					cl.expected[u] = o.expect(u)
				}
				cl.mu.Unlock()
				gw := rand.IntN(len(cl.gws))
				if o.pick != nil {
					gw = o.pick(i)
				}
				c, err := cl.login(u, gw)
				if err != nil {
					t.Errorf("%s: %v", u, err)
				} else if o.keep != nil && o.keep(i) {
					mu.Lock()
					kept = append(kept, openSession{i, c})
					mu.Unlock()
				} else {
					c.do("LOGOUT")
					c.close()
				}
				if done.Add(1) == int64(len(order)/2) && o.midway != nil {
					once.Do(o.midway)
				}
			}
		}()
	}
	for _, i := range order {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	return kept
}

// login logs user in through gateway gw and SELECTs INBOX, through the
// next gateways while one cannot be reached, ends the session (killed) or
// answers with a temporary failure.
func (cl *cluster) login(user string, gw int) (*tclient, error) {
	var last string
	for try := 0; try < 60; try++ {
		if try > 0 {
			cl.retries.Add(1)
			gw = (gw + 1) % len(cl.gws)
			time.Sleep(100 * time.Millisecond)
		}
		g := cl.gws[gw]
		gen := g.gen.Load()
		c, err := tdial(g.imapAddr)
		if err != nil {
			last = err.Error()
			continue
		}
		st, err := c.login(user)
		if err == nil && strings.HasPrefix(st, "OK") {
			// The session works: the backend opens the mailbox. A gateway
			// killed just now ends it (EOF): log in again.
			var sel string
			if sel, err = c.do("SELECT INBOX"); err == nil && !strings.HasPrefix(sel, "OK") {
				c.close()
				return nil, fmt.Errorf("via %s: SELECT INBOX: %s", g.name, sel)
			}
		}
		switch {
		case err != nil:
			last = err.Error()
			c.close()
			continue
		case strings.HasPrefix(st, "OK"):
			c.gw, c.gen = gw, gen
			cl.mu.Lock()
			cl.logins++
			cl.mu.Unlock()
			return c, nil
		case strings.HasPrefix(st, "NO [UNAVAILABLE]"):
			cl.tempFails.Add(1)
			last = st
			c.close()
			continue
		default:
			c.close()
			return nil, fmt.Errorf("login via %s: %s", g.name, st)
		}
	}
	return nil, fmt.Errorf("no gateway let the user in: %s", last)
}

// check verifies, with the backends' own records, that every user who
// logged in so far did so on one backend only, the one expected, and that
// the sessions kept open are there: anvil (doveadm who) has each user on
// that backend only. It returns the sessions still open (those through a
// killed gateway are gone).
func (cl *cluster) check(t *testing.T, what string, open []openSession) []openSession {
	t.Helper()
	var alive []openSession
	for _, s := range open {
		if st, err := s.c.do("NOOP"); err == nil && strings.HasPrefix(st, "OK") {
			alive = append(alive, s)
		} else {
			s.c.close()
		}
	}
	cl.mu.Lock()
	logins := cl.logins
	expected := make(map[string]string, len(cl.expected))
	for u, ip := range cl.expected {
		expected[u] = ip
	}
	cl.mu.Unlock()
	seen := cl.e.backendLogins(logins)
	bad := 0
	for u, want := range expected {
		if got := seen[u]; len(got) != 1 || got[want] == 0 {
			if bad++; bad <= 10 {
				t.Errorf("%s: %s logged in on backends %v, want %s only", what, u, got, want)
			}
		}
	}
	// anvil: every open session, each user on its backend only
	var now map[string]map[string]int
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		m, err := cl.e.sessionsNow(ctx)
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		total := 0
		for _, byIP := range m {
			for _, n := range byIP {
				total += n
			}
		}
		now = m
		if total == len(alive) || time.Now().After(deadline) {
			if total != len(alive) {
				t.Errorf("%s: the backends have %d sessions, the clients %d", what, total, len(alive))
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for u, byIP := range now {
		if len(byIP) != 1 || byIP[expected[u]] == 0 {
			t.Errorf("%s: anvil has %s on %v, want %s only", what, u, byIP, expected[u])
		}
	}
	for _, s := range alive {
		if now[userName(s.user)] == nil {
			t.Errorf("%s: %s has a session open but no backend shows it", what, userName(s.user))
		}
	}
	t.Logf("%s: %d users on their ring backend by the backends' logs (%d logins), %d sessions open, each on its user's backend (anvil)",
		what, len(expected), logins, len(alive))
	return alive
}

// runClusterScenario: rounds of logins through the three gateways, with a
// SIGKILL and restart of gw1 in the middle of the second round and a vhost
// change before the third.
func runClusterScenario(t *testing.T, cl *cluster) {
	cl.expected = map[string]string{}
	bin, gws := cl.bin, cl.gws
	started := time.Now()
	defer func() {
		t.Logf("scenario took %v; %d logins, %d retries (gateway killed or [UNAVAILABLE]), %d temporary failures",
			time.Since(started).Round(time.Millisecond), cl.logins, cl.retries.Load(), cl.tempFails.Load())
	}()

	// The store holds the three backends, whatever gw2's file says, and
	// gw2 says how its file differs.
	stored := storedHosts(t, bin, gws[2].conf())
	if len(stored) != 3 {
		t.Fatalf("the store holds %v, want the three backends gw0 seeded", stored)
	}
	for _, h := range stored {
		if h.VHosts != director.DefaultVHosts || h.Down {
			t.Fatalf("stored host %v, want %d vhosts, up", h, director.DefaultVHosts)
		}
	}
	if !strings.Contains(gws[2].log(), "differ from the store's") {
		t.Errorf("gw2, whose file lists fewer backends, does not warn about the difference:\n%s", lastLines(gws[2].log(), 10))
	}
	oldRing := func(u string) string { return ringOf(stored, u) }
	per := map[string]int{}
	for i := 0; i < clusterOld; i++ {
		per[oldRing(userName(i))]++
	}
	t.Logf("the ring over the stored hosts places the first %d users: %v", clusterOld, per)
	if len(per) != 3 {
		t.Fatalf("the test needs users on every backend: %v", per)
	}

	old := make([]int, clusterOld)
	for i := range old {
		old[i] = i
	}
	heldUser := func(i int) bool { return i%5 == 0 }

	// Round 1: everyone, through random gateways; every fifth user keeps
	// its session.
	open := cl.round(t, roundOpts{users: old, keep: heldUser, expect: oldRing})
	if t.Failed() {
		return
	}
	open = cl.check(t, "round 1", open)

	// Round 2: everyone again; the users with a session open get a second
	// one through another gateway; gw1 is killed (SIGKILL) half-way and
	// restarted.
	firstGW := map[int]int{}
	for _, s := range open {
		firstGW[s.user] = s.c.gw
	}
	restarted := make(chan error, 1)
	var killedAt time.Time
	open2 := cl.round(t, roundOpts{
		users: old, keep: heldUser, expect: oldRing,
		pick: func(i int) int {
			if g, ok := firstGW[i]; ok {
				return (g + 1 + rand.IntN(2)) % 3
			}
			return rand.IntN(3)
		},
		midway: func() {
			killedAt = time.Now()
			gws[1].kill()
			go func() {
				time.Sleep(300 * time.Millisecond)
				restarted <- gws[1].start(bin)
			}()
		},
	})
	if err := <-restarted; err != nil {
		t.Fatal(err)
	}
	t.Logf("gw1 killed and serving again after %v", time.Since(killedAt).Round(time.Millisecond))
	if t.Failed() {
		return
	}
	open = cl.check(t, "round 2 (gw1 killed and restarted)", append(open, open2...))
	across := map[int]map[int]bool{}
	for _, s := range open {
		if across[s.user] == nil {
			across[s.user] = map[int]bool{}
		}
		across[s.user][s.c.gw] = true
	}
	n := 0
	for _, gs := range across {
		if len(gs) > 1 {
			n++
		}
	}
	t.Logf("%d users have sessions open through two gateways at once", n)
	if n == 0 {
		t.Errorf("no user has sessions through two gateways: the check proves little")
	}

	// A new vhost count for 127.0.0.13, from the command line with gw2's
	// file (which does not even list that backend).
	if out, err := directorCLI(bin, gws[2].conf(), "update", "127.0.0.13", "300"); err != nil {
		t.Fatal(err)
	} else if strings.TrimSpace(out) != "OK" {
		t.Fatalf("director update: %q", out)
	}
	updated := storedHosts(t, bin, gws[0].conf())
	for _, h := range updated {
		if h.IP == "127.0.0.13" && h.VHosts != 300 {
			t.Fatalf("after director update, the store has %v", h)
		}
	}
	newRing := func(u string) string { return ringOf(updated, u) }
	// The gateways follow the store through their watches: a moment.
	time.Sleep(1500 * time.Millisecond)
	moved := 0
	for i := 0; i < clusterOld; i++ {
		if oldRing(userName(i)) != newRing(userName(i)) {
			moved++
		}
	}
	var fresh []int
	freshMoved := 0
	for i := clusterOld; i < clusterOld+clusterNew; i++ {
		fresh = append(fresh, i)
		if oldRing(userName(i)) != newRing(userName(i)) {
			freshMoved++
		}
	}
	t.Logf("127.0.0.13 at 300 vhosts: the new ring would move %d of the %d known users (they must stay), and places %d of the %d new users elsewhere than the old ring",
		moved, clusterOld, freshMoved, clusterNew)
	if moved == 0 || freshMoved == 0 {
		t.Fatalf("the vhost change moves nobody: the check proves nothing")
	}

	// Round 3: the known users stay on their backends (sticky), with their
	// sessions still open; new users follow the new ring.
	cl.round(t, roundOpts{users: old, expect: oldRing})
	open3 := cl.round(t, roundOpts{users: fresh, keep: heldUser, expect: newRing})
	if t.Failed() {
		return
	}
	open = cl.check(t, "round 3 (after director update)", append(open, open3...))
	for _, s := range open {
		s.c.do("LOGOUT")
		s.c.close()
	}
}
