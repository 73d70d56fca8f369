// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// TestDrainMaintenance replays the seed memo's maintenance of a backend as
// one command, on two gateways sharing an etcd: `director drain
// --kick-after 4s HOST` while IMAP sessions are held on the host through
// both gateways and an LMTP delivery to it is in flight. New users never
// reach the host; the held sessions end only after --kick-after; the
// delivery finishes and is on disk once; the drain exits 0 only when no
// gateway serves the host; a chosen test account can still be moved
// there; undrain gives the host its vhosts back.
func TestDrainMaintenance(t *testing.T) {
	ips := clusterIPs[:2]
	x, other := ips[0], ips[1]
	e := startBackends(t, ips, 80)
	etcd := harness.StartEtcd(t, harness.EtcdOptions{Dir: filepath.Join(e.dir, "etcd")})
	bin := gatewayBinary(t)
	store := fmt.Sprintf("  store: etcd\n  lease_ttl: 3s\n  etcd: {endpoints: [%s], prefix: /mdit-drain/}\n", etcd.ClientURL())
	g0 := e.newClusterGW(t, clusterGWConf{name: "gw0", backends: ips, lmtp: true, director: store})
	g1 := e.newClusterGW(t, clusterGWConf{name: "gw1", backends: ips, lmtp: true, director: store})
	startAll(t, bin, g0, g1)

	var onX, fresh []string
	for i := 0; i < 80; i++ {
		if e.ringBackend(userName(i)) == x {
			if len(onX) < 4 {
				onX = append(onX, userName(i))
			} else if len(fresh) < 6 {
				fresh = append(fresh, userName(i))
			}
		}
	}
	// Held sessions on x, through both gateways.
	var held []*tclient
	for i, u := range onX[:3] {
		g := []*clusterGW{g0, g1}[i%2]
		c, err := tdial(g.imapAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.close()
		if st, err := c.login(u); err != nil || !strings.HasPrefix(st, "OK") {
			t.Fatalf("login %s: %q %v", u, st, err)
		}
		held = append(held, c)
	}
	// An LMTP delivery to x in flight: RCPT accepted, DATA not yet sent.
	lc, err := tdialLMTP(g1.lmtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer lc.close()
	for _, cmd := range []string{"LHLO test", "MAIL FROM:<sender@example.org>", "RCPT TO:<" + onX[3] + ">"} {
		if r, err := lc.cmd("%s", cmd); err != nil || !strings.HasPrefix(r, "250") {
			t.Fatalf("%s: %q %v", cmd, r, err)
		}
	}

	type result struct {
		out string
		err error
	}
	drained := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := directorCLIWithin(bin, g0.conf(), 90*time.Second, "drain", "--kick-after", "4s", "--timeout", "60s", x)
		drained <- result{out, err}
	}()
	// New users of x's ring position go elsewhere while it drains.
	waitFor(t, func() bool {
		for _, h := range storedHosts(t, bin, g0.conf()) {
			if h.IP == x {
				return h.VHosts == 0
			}
		}
		return false
	})
	time.Sleep(1500 * time.Millisecond) // both gateways see the drained ring
	for i, u := range fresh {
		g := []*clusterGW{g0, g1}[i%2]
		c, err := tdial(g.imapAddr)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := c.login(u); err != nil || !strings.HasPrefix(st, "OK") {
			t.Fatalf("login %s during the drain: %q %v", u, st, err)
		}
		c.do("LOGOUT")
		c.close()
	}
	// Before --kick-after, the held sessions are untouched.
	for _, c := range held {
		if st, err := c.do("NOOP"); err != nil || !strings.HasPrefix(st, "OK") {
			t.Fatalf("a held session ended before --kick-after: %q %v", st, err)
		}
	}
	// The delivery completes (its lease holds the drain until it does).
	msgID := fmt.Sprintf("drain-%d@test", time.Now().UnixNano())
	if r, err := lc.cmd("DATA"); err != nil || !strings.HasPrefix(r, "354") {
		t.Fatalf("DATA: %q %v", r, err)
	}
	if r, err := lc.cmd("Subject: drain\r\nMessage-ID: <%s>\r\n\r\nhello\r\n.", msgID); err != nil || !strings.HasPrefix(r, "250") {
		t.Fatalf("end of DATA: %q %v", r, err)
	}
	lc.cmd("QUIT")

	var res result
	select {
	case res = <-drained:
	case <-time.After(90 * time.Second):
		t.Fatal("the drain did not finish")
	}
	took := time.Since(start)
	t.Logf("drain output (%v):\n%s", took.Round(time.Millisecond), res.out)
	if res.err != nil {
		t.Fatalf("drain: %v", res.err)
	}
	if took < 4*time.Second {
		t.Fatalf("the drain finished in %v, before --kick-after", took)
	}
	for i, c := range held {
		c.conn.SetDeadline(time.Now().Add(5 * time.Second))
		if st, err := c.do("NOOP"); err == nil && strings.HasPrefix(st, "OK") {
			t.Fatalf("held session %d survived the drain", i)
		}
	}
	// Nobody left on x, by the backend's own account.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now, err := e.sessionsNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for u, per := range now {
		if per[x] > 0 {
			t.Errorf("%s still has a session on the drained %s", u, x)
		}
	}
	// The fresh users logged in on the other backend only.
	logins := e.backendLogins(len(onX[:3]) + len(fresh))
	for _, u := range fresh {
		if logins[u][x] > 0 || logins[u][other] == 0 {
			t.Errorf("new user %s during the drain: logins %v, want %s only", u, logins[u], other)
		}
	}
	if n := e.maildirMessageIDs("drain-")[onX[3]+"/"+msgID]; n != 1 {
		t.Errorf("the delivery in flight is on disk %d times, want once", n)
	}

	// The seed's step 5: a test account sent to the drained host on
	// purpose, through either gateway.
	if out, err := directorCLI(bin, g1.conf(), "move", fresh[0], x); err != nil {
		t.Fatalf("move to the drained host: %v\n%s", err, out)
	}
	c, err := tdial(g1.imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.login(fresh[0]); err != nil || !strings.HasPrefix(st, "OK") {
		t.Fatalf("test account login: %q %v", st, err)
	}
	c.do("LOGOUT")
	c.close()
	if after := e.backendLogins(len(onX[:3]) + len(fresh) + 1); after[fresh[0]][x] != 1 {
		t.Errorf("the test account did not reach the drained host: %v", after[fresh[0]])
	}

	if out, err := directorCLI(bin, g0.conf(), "undrain", x); err != nil {
		t.Fatalf("undrain: %v\n%s", err, out)
	}
	for _, h := range storedHosts(t, bin, g0.conf()) {
		if h.IP == x && h.VHosts != 100 {
			t.Errorf("after undrain %s has %d vhosts, want 100", x, h.VHosts)
		}
	}
}
