// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// TestChaos: three gateways on one etcd, each reaching it through its own
// CutProxy; three Dovecot backends on one mail root; 200 users. Workers
// keep IMAP sessions open (NOOP, SELECT), log in and out through random
// gateways and deliver mail over LMTP through random gateways, while a
// chaos loop changes vhost counts, takes hosts down and up, SIGKILLs and
// restarts gateways and cuts gateways off etcd for longer than their
// lease. Throughout, every backend's anvil (what doveadm who shows) is
// sampled every 20 ms: a user with sessions on two backends at once in two
// consecutive samples is a split — the figure must be 0. Afterwards every
// LMTP 250 must be on disk exactly once.
//
// MD_CHAOS_SECONDS sets how long the chaos lasts (default 75).
func TestChaos(t *testing.T) {
	const (
		nUsers      = 200
		imapWorkers = 16
		lmtpWorkers = 3
		leaseTTL    = 3 * time.Second
	)
	chaosFor := 75 * time.Second
	if s := os.Getenv("MD_CHAOS_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 5 {
			t.Fatalf("MD_CHAOS_SECONDS=%q: want a number of seconds, at least 5", s)
		}
		chaosFor = time.Duration(n) * time.Second
	}
	e := startBackends(t, clusterIPs, nUsers)
	etcd := harness.StartEtcd(t, harness.EtcdOptions{Dir: filepath.Join(e.dir, "etcd")})
	bin := gatewayBinary(t)
	storeVia := func(endpoint string) string {
		return fmt.Sprintf("  store: etcd\n  lease_ttl: %s\n  etcd: {endpoints: [%s], prefix: /mdit-chaos/, dial_timeout: 2s}\n", leaseTTL, endpoint)
	}
	var gws []*clusterGW
	var proxies []*harness.CutProxy
	for i := 0; i < 3; i++ {
		p := harness.NewCutProxy(t, etcd.ClientAddr())
		proxies = append(proxies, p)
		g := e.newClusterGW(t, clusterGWConf{
			name: fmt.Sprintf("gw%d", i), backends: clusterIPs, lmtp: true,
			director: storeVia("http://" + p.Addr()), userExpire: "10s",
		})
		gws = append(gws, g)
	}
	// The command line reaches etcd directly, never through a cut proxy.
	cli := e.newClusterGW(t, clusterGWConf{name: "cli", backends: clusterIPs, director: storeVia(etcd.ClientURL()), userExpire: "10s"})
	startAll(t, bin, gws[0])
	startAll(t, bin, gws[1], gws[2])

	ch := &chaos{t: t, e: e, bin: bin, gws: gws, proxies: proxies, cliConf: cli.conf(), nUsers: nUsers, leaseTTL: leaseTTL, start: time.Now()}

	// The sampler runs from now until the very end.
	sampleCtx, stopSampling := context.WithCancel(context.Background())
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); ch.sample(sampleCtx) }()
	defer func() { stopSampling(); <-samplerDone }()

	workCtx, stopWork := context.WithCancel(context.Background())
	var workers sync.WaitGroup
	for w := 0; w < imapWorkers; w++ {
		workers.Add(1)
		go func() { defer workers.Done(); ch.imapWorker(workCtx, w) }()
	}
	for w := 0; w < lmtpWorkers; w++ {
		workers.Add(1)
		go func() { defer workers.Done(); ch.lmtpWorker(workCtx, w) }()
	}

	// Let the workers fill the backends first.
	time.Sleep(3 * time.Second)
	ch.run(chaosFor)

	// Peace: every gateway connected and running, every host up.
	ch.heal()
	time.Sleep(2 * time.Second) // the workers see a healthy cluster for a moment
	stopWork()
	workers.Wait()

	// Every user logs in through all three gateways at once: each is on
	// one backend. (After a failure, a stuck move may hold users: the
	// figures below say more.)
	if !t.Failed() {
		ch.finalCheck()
	}
	stopSampling()
	<-samplerDone

	// Every LMTP 250 is on disk exactly once.
	ch.checkDeliveries()
	ch.report()
}

// chaos is the state of TestChaos.
type chaos struct {
	t        *testing.T
	e        *env
	bin      string
	gws      []*clusterGW
	proxies  []*harness.CutProxy
	cliConf  string
	nUsers   int
	leaseTTL time.Duration
	start    time.Time

	// what the clients saw
	loginOK, loginTemp, loginClosed, loginBad, loginOther atomic.Int64
	dialFailed                                            atomic.Int64
	commands, kicks, killDrops, commandNO                 atomic.Int64
	lmtp250, lmtp4xx, lmtp5xx, lmtpLost                   atomic.Int64

	// the sampler's figures
	samples, sampleErrs, rawOverlaps, rawInstants, persistent atomic.Int64

	mu         sync.Mutex
	timeline   []string // chaos actions, with times
	actions    map[string]int
	overlaps   []string // overlap evidence (first ones)
	deliveries []delivery
	oddities   []string // unexpected replies
	unfence    []time.Duration
	downTimes  []time.Duration
}

// delivery is one LMTP recipient's outcome.
type delivery struct {
	rcpt, id string
	reply    string // the final reply (DATA's, or RCPT's when refused); "" when the connection was lost first
	gw       string
}

func (ch *chaos) since() time.Duration { return time.Since(ch.start).Round(time.Millisecond) }

func (ch *chaos) note(format string, args ...any) {
	s := fmt.Sprintf("%9v  ", ch.since()) + fmt.Sprintf(format, args...)
	ch.mu.Lock()
	ch.timeline = append(ch.timeline, s)
	ch.mu.Unlock()
}

func (ch *chaos) oddity(format string, args ...any) {
	ch.mu.Lock()
	if len(ch.oddities) < 50 {
		ch.oddities = append(ch.oddities, fmt.Sprintf("%v ", ch.since())+fmt.Sprintf(format, args...))
	}
	ch.mu.Unlock()
}

// sample asks every backend's anvil who is there, every 20 ms, and counts
// users found on two backends: raw (each sample) and persistent (the same
// user in two consecutive samples at least 20 ms apart; anvil drops a
// session a few milliseconds after its connection ends, and one sample
// asks the backends one after the other).
func (ch *chaos) sample(ctx context.Context) {
	var prev map[string]string
	var prevAt time.Time
	for ctx.Err() == nil {
		at := time.Now()
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		m, err := ch.e.sessionsNow(sctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				ch.sampleErrs.Add(1)
			}
			prev = nil
			time.Sleep(20 * time.Millisecond)
			continue
		}
		ch.samples.Add(1)
		cur := map[string]string{}
		for u, byIP := range m {
			if len(byIP) < 2 {
				continue
			}
			where := fmt.Sprint(byIP)
			cur[u] = where
			ch.rawOverlaps.Add(1)
			_, again := prev[u]
			persists := again && at.Sub(prevAt) >= 20*time.Millisecond
			if persists {
				ch.persistent.Add(1)
			}
			ch.mu.Lock()
			if len(ch.overlaps) < 40 {
				kind := "raw"
				if persists {
					kind = fmt.Sprintf("PERSISTENT (also %v earlier: %s)", at.Sub(prevAt).Round(time.Millisecond), prev[u])
				}
				ch.overlaps = append(ch.overlaps, fmt.Sprintf("%v %s on %s: %s", at.Sub(ch.start).Round(time.Millisecond), u, where, kind))
			}
			ch.mu.Unlock()
		}
		if len(cur) > 0 {
			ch.rawInstants.Add(1)
		}
		prev, prevAt = cur, at
		time.Sleep(20 * time.Millisecond)
	}
}

// chaosSession is a worker's open IMAP session.
type chaosSession struct {
	user string
	c    *tclient
}

// imapWorker keeps up to five sessions open, opening new ones through
// random gateways, using (NOOP, SELECT) and closing them at random.
func (ch *chaos) imapWorker(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(id), uint64(time.Now().UnixNano())))
	var mine []chaosSession
	defer func() {
		for _, s := range mine {
			s.c.do("LOGOUT")
			s.c.close()
		}
	}()
	for ctx.Err() == nil {
		r := rng.IntN(10)
		switch {
		case len(mine) == 0 || (len(mine) < 5 && r < 4):
			if s, ok := ch.open(rng); ok {
				mine = append(mine, s)
			}
		case r < 8:
			k := rng.IntN(len(mine))
			s := mine[k]
			cmd := "NOOP"
			if rng.IntN(2) == 0 {
				cmd = "SELECT INBOX"
			}
			st, err := s.c.do("%s", cmd)
			if err == nil {
				ch.commands.Add(1)
				if !strings.HasPrefix(st, "OK") {
					ch.commandNO.Add(1)
					ch.oddity("%s: %s via %s: %s", s.user, cmd, ch.gws[s.c.gw].name, st)
				}
				break
			}
			// The session ended under us: the gateway was killed, or it
			// ended the session (a move, or fenced): a kick.
			g := ch.gws[s.c.gw]
			if g.gen.Load() != s.c.gen || g.dead.Load() {
				ch.killDrops.Add(1)
			} else {
				ch.kicks.Add(1)
			}
			s.c.close()
			mine = append(mine[:k], mine[k+1:]...)
		default:
			k := rng.IntN(len(mine))
			mine[k].c.do("LOGOUT")
			mine[k].c.close()
			mine = append(mine[:k], mine[k+1:]...)
		}
		time.Sleep(time.Duration(5+rng.IntN(25)) * time.Millisecond)
	}
}

// open logs a random user in through a random gateway.
func (ch *chaos) open(rng *rand.Rand) (chaosSession, bool) {
	user := userName(rng.IntN(ch.nUsers))
	gi := rng.IntN(len(ch.gws))
	g := ch.gws[gi]
	gen := g.gen.Load()
	c, err := tdial(g.imapAddr)
	if err != nil {
		ch.dialFailed.Add(1)
		return chaosSession{}, false
	}
	st, err := c.login(user)
	switch {
	case err != nil:
		ch.loginClosed.Add(1)
	case strings.HasPrefix(st, "OK"):
		ch.loginOK.Add(1)
		c.gw, c.gen = gi, gen
		return chaosSession{user, c}, true
	case strings.HasPrefix(st, "NO [UNAVAILABLE]"):
		ch.loginTemp.Add(1)
	case strings.Contains(st, "AUTHENTICATIONFAILED"):
		ch.loginBad.Add(1)
		ch.oddity("%s via %s: LOGIN: %s", user, g.name, st)
	default:
		ch.loginOther.Add(1)
		ch.oddity("%s via %s: LOGIN: %s", user, g.name, st)
	}
	c.close()
	return chaosSession{}, false
}

// lmtpWorker delivers messages with unique Message-IDs to one to three
// random users through random gateways.
func (ch *chaos) lmtpWorker(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(100+id), uint64(time.Now().UnixNano())))
	for n := 0; ctx.Err() == nil; n++ {
		g := ch.gws[rng.IntN(len(ch.gws))]
		msgID := fmt.Sprintf("chaos-%d-%d@test", id, n)
		var rcpts []string
		for len(rcpts) < 1+rng.IntN(3) {
			u := userName(rng.IntN(ch.nUsers))
			if !contains(rcpts, u) {
				rcpts = append(rcpts, u)
			}
		}
		out := ch.deliver(g, msgID, rcpts)
		ch.mu.Lock()
		ch.deliveries = append(ch.deliveries, out...)
		ch.mu.Unlock()
		time.Sleep(time.Duration(10+rng.IntN(30)) * time.Millisecond)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// deliver runs one LMTP transaction and returns each recipient's outcome.
func (ch *chaos) deliver(g *clusterGW, msgID string, rcpts []string) []delivery {
	out := make([]delivery, len(rcpts))
	for i, r := range rcpts {
		out[i] = delivery{rcpt: r, id: msgID, gw: g.name}
	}
	c, err := tdialLMTP(g.lmtpAddr)
	if err != nil {
		ch.dialFailed.Add(1)
		return nil // nothing was sent
	}
	defer c.close()
	if r, err := c.cmd("LHLO chaos.test"); err != nil || !strings.HasPrefix(r, "250") {
		return nil
	}
	if r, err := c.cmd("MAIL FROM:<chaos@example.org>"); err != nil || !strings.HasPrefix(r, "250") {
		return nil
	}
	var accepted []int
	for i, r := range rcpts {
		rep, err := c.cmd("RCPT TO:<%s>", r)
		if err != nil {
			ch.lmtpLost.Add(int64(len(rcpts) - i))
			return out
		}
		if strings.HasPrefix(rep, "250") {
			accepted = append(accepted, i)
		} else {
			out[i].reply = rep
			ch.count(rep, r, msgID, "RCPT")
		}
	}
	if len(accepted) == 0 {
		c.cmd("QUIT")
		return out
	}
	rep, err := c.cmd("DATA")
	if err != nil || !strings.HasPrefix(rep, "354") {
		for _, i := range accepted {
			if err != nil {
				ch.lmtpLost.Add(1)
			} else {
				out[i].reply = rep
				ch.count(rep, rcpts[i], msgID, "DATA")
			}
		}
		return out
	}
	if _, err := c.conn.Write([]byte(strings.ReplaceAll(message(msgID, "chaos"), "\n.", "\n..") + ".\r\n")); err != nil {
		ch.lmtpLost.Add(int64(len(accepted)))
		return out
	}
	for k, i := range accepted {
		rep, err := c.reply()
		if err != nil {
			ch.lmtpLost.Add(int64(len(accepted) - k))
			return out
		}
		out[i].reply = rep
		ch.count(rep, rcpts[i], msgID, "end of DATA")
	}
	c.cmd("QUIT")
	return out
}

func (ch *chaos) count(rep, rcpt, id, stage string) {
	switch rep[0] {
	case '2':
		ch.lmtp250.Add(1)
	case '4':
		ch.lmtp4xx.Add(1)
	default:
		ch.lmtp5xx.Add(1)
		ch.oddity("LMTP %s for %s (%s): %s", stage, rcpt, id, rep)
	}
}

// run is the chaos loop: one action after another, for d.
func (ch *chaos) run(d time.Duration) {
	ch.actions = map[string]int{}
	kinds := []string{"vhosts", "down-up", "kill", "cut", "vhosts", "stall", "cut+down", "kill", "vhosts", "down-up", "stall+down"}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		if ch.t.Failed() {
			ch.note("chaos stopped early: the test failed")
			return
		}
		kind := kinds[i%len(kinds)]
		ch.act(rng, kind)
		ch.mu.Lock()
		ch.actions[kind]++
		ch.mu.Unlock()
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
	}
}

func (ch *chaos) cliRun(args ...string) bool {
	started := time.Now()
	out, err := directorCLIWithin(ch.bin, ch.cliConf, 30*time.Second, args...)
	took := time.Since(started).Round(time.Millisecond)
	if err != nil {
		ch.t.Errorf("%v: director %s: %v (a move that does not finish in 30s, with lease_ttl %v, means a gateway never acknowledged it while its lease lived)", ch.since(), strings.Join(args, " "), err, ch.leaseTTL)
		ch.note("director %s FAILED after %v: %s", strings.Join(args, " "), took, strings.TrimSpace(out))
		return false
	}
	ch.note("director %s: OK in %v", strings.Join(args, " "), took)
	if args[0] == "down" {
		ch.mu.Lock()
		ch.downTimes = append(ch.downTimes, took)
		ch.mu.Unlock()
	}
	return true
}

// act carries out one chaos action.
func (ch *chaos) act(rng *rand.Rand, kind string) {
	ip := clusterIPs[rng.IntN(len(clusterIPs))]
	gi := rng.IntN(len(ch.gws))
	g := ch.gws[gi]
	switch kind {
	case "vhosts":
		n := []int{25, 50, 100, 200, 400}[rng.IntN(5)]
		ch.cliRun("update", ip, strconv.Itoa(n))
	case "down-up":
		if ch.cliRun("down", ip) {
			time.Sleep(2 * time.Second)
		}
		ch.cliRun("up", ip)
	case "kill":
		ch.note("SIGKILL %s", g.name)
		g.kill()
		time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		if err := g.start(ch.bin); err != nil {
			ch.t.Errorf("restarting %s: %v", g.name, err)
			return
		}
		ch.note("%s serving again", g.name)
	case "cut", "stall", "cut+down", "stall+down":
		fencedBefore := strings.Count(g.currentLog(), "fenced off the cluster store")
		backBefore := strings.Count(g.currentLog(), "the cluster store is back")
		cutAt := time.Now()
		if strings.HasPrefix(kind, "cut") {
			ch.note("cut %s off etcd", g.name)
			ch.proxies[gi].Cut()
		} else {
			ch.note("stall %s's etcd traffic", g.name)
			ch.proxies[gi].Stall()
		}
		if strings.HasSuffix(kind, "+down") {
			// The move must wait for the cut gateway: its acknowledgement
			// never comes, so until its lease lapses.
			ch.cliRun("down", ip)
		}
		if rest := ch.leaseTTL + 2*time.Second - time.Since(cutAt); rest > 0 {
			time.Sleep(rest)
		}
		if strings.Count(g.currentLog(), "fenced off the cluster store") == fencedBefore {
			ch.t.Errorf("%v: %s was cut off etcd for %v (lease_ttl %v) and did not fence itself", ch.since(), g.name, time.Since(cutAt).Round(time.Millisecond), ch.leaseTTL)
		}
		restored := time.Now()
		ch.proxies[gi].Restore()
		ch.note("%s's etcd traffic restored", g.name)
		deadline := restored.Add(30 * time.Second)
		for strings.Count(g.currentLog(), "the cluster store is back") == backBefore {
			if time.Now().After(deadline) {
				ch.t.Errorf("%v: %s did not unfence within 30s of its etcd traffic being restored", ch.since(), g.name)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(restored)
		ch.mu.Lock()
		ch.unfence = append(ch.unfence, took)
		ch.mu.Unlock()
		ch.note("%s admitting logins again, %v after the restore", g.name, took.Round(time.Millisecond))
		if strings.HasSuffix(kind, "+down") {
			ch.cliRun("up", ip)
		}
	}
}

// heal ends the chaos: every proxy forwards, every gateway runs and is
// joined, every host is up.
func (ch *chaos) heal() {
	for _, p := range ch.proxies {
		p.Restore()
	}
	for _, g := range ch.gws {
		if g.dead.Load() {
			if err := g.start(ch.bin); err != nil {
				ch.t.Fatal(err)
			}
		}
	}
	for _, ip := range clusterIPs {
		ch.cliRun("up", ip)
	}
	// Each gateway lets a user in.
	for i, g := range ch.gws {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := tdial(g.imapAddr)
			if err == nil {
				c.conn.SetDeadline(time.Now().Add(10 * time.Second))
				st, err := c.login(userName(i))
				c.close()
				if err == nil && strings.HasPrefix(st, "OK") {
					break
				}
			}
			if time.Now().After(deadline) {
				ch.t.Fatalf("%s admits nobody 30s after the chaos ended", g.name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ch.note("chaos over: all gateways admit logins")
}

// finalCheck: every user logs in through all three gateways at once; the
// backends show each user on one backend.
func (ch *chaos) finalCheck() {
	t := ch.t
	var open []*tclient
	defer func() {
		for _, c := range open {
			c.do("LOGOUT")
			c.close()
		}
	}()
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; i < ch.nUsers; i++ {
		for gi, g := range ch.gws {
			var c *tclient
			for {
				var err error
				var st string
				if c, err = tdial(g.imapAddr); err == nil {
					c.conn.SetDeadline(time.Now().Add(10 * time.Second))
					if st, err = c.login(userName(i)); err == nil && strings.HasPrefix(st, "OK") {
						break
					}
					c.close()
				}
				if time.Now().After(deadline) {
					t.Fatalf("final check: %s via %s: %q %v", userName(i), g.name, st, err)
				}
				time.Sleep(100 * time.Millisecond)
			}
			c.gw = gi
			open = append(open, c)
		}
	}
	var m map[string]map[string]int
	deadline = time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var err error
		m, err = ch.e.sessionsNow(ctx)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, byIP := range m {
			for _, n := range byIP {
				total += n
			}
		}
		if total == len(open) || time.Now().After(deadline) {
			if total != len(open) {
				t.Errorf("final check: the backends show %d sessions, the clients hold %d", total, len(open))
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	split := 0
	per := map[string]int{}
	for u, byIP := range m {
		if len(byIP) != 1 {
			split++
			t.Errorf("final check: %s has sessions on %v", u, byIP)
		}
		for ip := range byIP {
			per[ip]++
		}
	}
	t.Logf("final check: %d users logged in through all 3 gateways at once: %d sessions, users per backend %v, %d split", ch.nUsers, len(open), per, split)
}

// checkDeliveries: every 250 is on disk exactly once; nothing is on disk
// twice; a refused (5xx) message is not on disk.
func (ch *chaos) checkDeliveries() {
	t := ch.t
	onDisk := ch.e.maildirMessageIDs("chaos-")
	var ok, okBad, temp, tempDelivered, perm, permDelivered, lost, lostDelivered int
	for _, d := range ch.deliveries {
		n := onDisk[d.rcpt+"/"+d.id]
		switch {
		case d.reply == "":
			lost++
			if n > 0 {
				lostDelivered++
			}
		case d.reply[0] == '2':
			ok++
			if n != 1 {
				okBad++
				if okBad <= 10 {
					t.Errorf("%s got 250 via %s for %s, and it is on disk %d times", d.rcpt, d.gw, d.id, n)
				}
			}
		case d.reply[0] == '4':
			temp++
			if n > 0 {
				tempDelivered++
			}
		default:
			perm++
			if n > 0 {
				permDelivered++
				t.Errorf("%s got %q via %s for %s, yet it is on disk %d times", d.rcpt, d.reply, d.gw, d.id, n)
			}
		}
	}
	dup := 0
	for k, n := range onDisk {
		if n > 1 {
			if dup++; dup <= 10 {
				t.Errorf("%s is on disk %d times", k, n)
			}
		}
	}
	t.Logf("LMTP: %d recipients answered 250, each on disk exactly once: %d wrong; %d 4xx (%d of them delivered anyway), %d 5xx (%d delivered), %d connection lost before the reply (%d delivered); %d messages on disk twice or more",
		ok, okBad, temp, tempDelivered, perm, permDelivered, lost, lostDelivered, dup)
	if ok < 100 {
		t.Errorf("only %d LMTP deliveries succeeded: the test proves little", ok)
	}
}

// report prints the figures and fails on a persistent overlap.
func (ch *chaos) report() {
	t := ch.t
	ch.mu.Lock()
	defer ch.mu.Unlock()
	var acts []string
	for k, n := range ch.actions {
		acts = append(acts, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(acts)
	t.Logf("chaos timeline:\n%s", strings.Join(ch.timeline, "\n"))
	t.Logf("chaos actions: %s", strings.Join(acts, ", "))
	t.Logf("IMAP logins: %d OK, %d temporary failures ([UNAVAILABLE]), %d connections closed during login, %d refused at connect (gateway down), %d AUTHENTICATIONFAILED, %d other",
		ch.loginOK.Load(), ch.loginTemp.Load(), ch.loginClosed.Load(), ch.dialFailed.Load(), ch.loginBad.Load(), ch.loginOther.Load())
	t.Logf("IMAP sessions: %d commands (%d answered NO/BAD), %d kicks (a move or fencing ended the session), %d ended by a gateway's SIGKILL",
		ch.commands.Load(), ch.commandNO.Load(), ch.kicks.Load(), ch.killDrops.Load())
	t.Logf("LMTP replies: %d 250, %d 4xx, %d 5xx, %d recipients whose connection was lost before the reply",
		ch.lmtp250.Load(), ch.lmtp4xx.Load(), ch.lmtp5xx.Load(), ch.lmtpLost.Load())
	t.Logf("host down moves took %v; gateways admitted logins again %v after their etcd traffic was restored", ch.downTimes, ch.unfence)
	t.Logf("anvil samples: %d (%d failed); users on two backends at once: raw %d (in %d samples), persistent %d",
		ch.samples.Load(), ch.sampleErrs.Load(), ch.rawOverlaps.Load(), ch.rawInstants.Load(), ch.persistent.Load())
	if len(ch.overlaps) > 0 {
		t.Logf("overlaps seen:\n%s", strings.Join(ch.overlaps, "\n"))
	}
	if len(ch.oddities) > 0 {
		t.Logf("unexpected replies:\n%s", strings.Join(ch.oddities, "\n"))
	}
	if n := ch.persistent.Load(); n != 0 {
		t.Errorf("%d persistent overlaps: users had sessions on two backends at once", n)
	}
	if n := ch.loginBad.Load(); n != 0 {
		t.Errorf("%d logins failed with AUTHENTICATIONFAILED: the chaos must never look like a wrong password", n)
	}
	if ch.loginOK.Load() < 500 || ch.kicks.Load() == 0 {
		t.Errorf("too little happened: %d logins, %d kicks", ch.loginOK.Load(), ch.kicks.Load())
	}
	if ch.samples.Load() < 100 {
		t.Errorf("only %d anvil samples", ch.samples.Load())
	}
}
