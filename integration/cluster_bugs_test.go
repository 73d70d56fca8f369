// SPDX-License-Identifier: Apache-2.0

package integration

// Two properties TestChaos depends on, each checked alone and
// deterministically, so that a failure names its cause.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/maildirector/maildirector/integration/harness"
)

// TestClusterFencesBeforeItsLeaseLapses: a gateway cut off etcd must end
// its sessions before etcd drops its lease, since from that moment a move
// may finish without it and send its users elsewhere. The gateway is cut
// at several moments after it joined (before, around and after its first
// keep-alive); each time its open IMAP session must end before the
// gateway's key under gateways/ is deleted.
func TestClusterFencesBeforeItsLeaseLapses(t *testing.T) {
	ips := clusterIPs[:1]
	e := startBackends(t, ips, 5)
	etcd := harness.StartEtcd(t, harness.EtcdOptions{Dir: filepath.Join(e.dir, "etcd")})
	bin := gatewayBinary(t)
	p := harness.NewCutProxy(t, etcd.ClientAddr())
	g := e.newClusterGW(t, clusterGWConf{name: "gw0", backends: ips,
		director: fmt.Sprintf("  store: etcd\n  lease_ttl: 3s\n  etcd: {endpoints: [http://%s], prefix: /mdit-fence/, dial_timeout: 2s}\n", p.Addr())})
	startAll(t, bin, g)

	cli, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	gone := make(chan time.Time, 16)
	wch := cli.Watch(ctx, "/mdit-fence/gateways/", clientv3.WithPrefix())
	go func() {
		for w := range wch {
			for _, ev := range w.Events {
				if ev.Type == clientv3.EventTypeDelete {
					gone <- time.Now()
				}
			}
		}
	}()

	joined := func() int { return strings.Count(g.currentLog(), "etcd: joined the cluster store") }
	for _, after := range []time.Duration{500 * time.Millisecond, 980 * time.Millisecond, 1050 * time.Millisecond, 1700 * time.Millisecond} {
		// A fresh lease: cut, wait for the fence, restore, wait for the
		// new join.
		n := joined()
		p.Cut()
		waitFor(t, func() bool { return strings.Contains(g.currentLog(), "lost the cluster store") })
		p.Restore()
		deadline := time.Now().Add(20 * time.Second)
		for joined() == n {
			if time.Now().After(deadline) {
				t.Fatal("the gateway did not join again")
			}
			time.Sleep(time.Millisecond)
		}
		joinedAt := time.Now()
		for len(gone) > 0 {
			<-gone
		}
		// An open session through the gateway.
		var c *tclient
		for c == nil {
			if c, err = tdial(g.imapAddr); err != nil {
				t.Fatal(err)
			}
			if st, err := c.login(userName(0)); err != nil || !strings.HasPrefix(st, "OK") {
				c.close()
				c = nil
				if time.Since(joinedAt) > 10*time.Second {
					t.Fatalf("no login after the join: %q %v", st, err)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		ended := make(chan time.Time, 1)
		go func() {
			c.conn.SetDeadline(time.Now().Add(30 * time.Second))
			buf := make([]byte, 512)
			for {
				if _, err := c.conn.Read(buf); err != nil {
					ended <- time.Now()
					return
				}
			}
		}()
		if d := after - time.Since(joinedAt); d > 0 {
			time.Sleep(d)
		}
		cutAt := time.Now()
		p.Cut()
		var endedAt, goneAt time.Time
		timeout := time.After(20 * time.Second)
		for endedAt.IsZero() || goneAt.IsZero() {
			select {
			case endedAt = <-ended:
			case goneAt = <-gone:
			case <-timeout:
				t.Fatalf("cut %v after joining: session ended %v, lease gone %v", after, endedAt, goneAt)
			}
		}
		c.close()
		t.Logf("cut %v after joining: the session ended %v after the cut, etcd dropped the lease %v after the cut: %v before",
			after, endedAt.Sub(cutAt).Round(time.Millisecond), goneAt.Sub(cutAt).Round(time.Millisecond), goneAt.Sub(endedAt).Round(time.Millisecond))
		if !endedAt.Before(goneAt) {
			t.Errorf("cut %v after joining: the gateway ended its session %v AFTER etcd dropped its lease: a move could finish and another gateway place the user elsewhere meanwhile",
				after, endedAt.Sub(goneAt).Round(time.Millisecond))
		}
		p.Restore()
	}
}

// TestClusterLMTPRecipientDuringMove: an LMTP transaction has a recipient
// on backend X accepted (its lease held until the transaction ends) when
// X is taken down; the next recipient is a user assigned to X, whom the
// move holds. The RCPT must be answered (451 is fine) rather than wait
// for the move — which waits for this very transaction — and the move
// must finish once the transaction is over.
func TestClusterLMTPRecipientDuringMove(t *testing.T) {
	ips := clusterIPs[:2]
	e := startBackends(t, ips, 40)
	etcd := harness.StartEtcd(t, harness.EtcdOptions{Dir: filepath.Join(e.dir, "etcd")})
	bin := gatewayBinary(t)
	g := e.newClusterGW(t, clusterGWConf{name: "gw0", backends: ips, lmtp: true,
		director: fmt.Sprintf("  store: etcd\n  lease_ttl: 3s\n  etcd: {endpoints: [%s], prefix: /mdit-lmtpmove/}\n", etcd.ClientURL())})
	startAll(t, bin, g)
	var onX []string
	for i := 0; i < 40 && len(onX) < 2; i++ {
		if e.ringBackend(userName(i)) == ips[0] {
			onX = append(onX, userName(i))
		}
	}
	a, b := onX[0], onX[1]
	// b has an assignment to X: it logged in a moment ago.
	ic, err := tdial(g.imapAddr)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := ic.login(b); err != nil || !strings.HasPrefix(st, "OK") {
		t.Fatalf("login %s: %q %v", b, st, err)
	}
	ic.do("LOGOUT")
	ic.close()

	c, err := tdialLMTP(g.lmtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	for _, cmd := range []string{"LHLO test", "MAIL FROM:<sender@example.org>", "RCPT TO:<" + a + ">"} {
		if r, err := c.cmd("%s", cmd); err != nil || !strings.HasPrefix(r, "250") {
			t.Fatalf("%s: %q %v", cmd, r, err)
		}
	}
	start := time.Now()
	down := make(chan error, 1)
	go func() {
		_, err := directorCLIWithin(bin, g.conf(), 60*time.Second, "down", ips[0])
		down <- err
	}()
	// The gateway holds X's users once it has seen the move.
	waitFor(t, func() bool { return strings.Contains(g.currentLog(), "ending sessions for a move") })
	c.conn.SetDeadline(time.Now().Add(15 * time.Second))
	r, err := c.cmd("RCPT TO:<%s>", b)
	t.Logf("RCPT TO:<%s> (held by the move) answered after %v: %q %v", b, time.Since(start).Round(time.Millisecond), r, err)
	if err != nil {
		t.Errorf("the RCPT of a user held by the move got no answer in 15s (%v): the transaction holds a lease the move waits for, and waits for the move", err)
	} else {
		c.conn.SetDeadline(time.Now().Add(15 * time.Second))
		c.cmd("RSET")
		c.cmd("QUIT")
	}
	c.close()
	ended := time.Now()
	select {
	case err := <-down:
		if err != nil {
			t.Errorf("director down: %v", err)
		}
		t.Logf("director down done %v after the transaction ended", time.Since(ended).Round(time.Millisecond))
	case <-time.After(15 * time.Second):
		t.Errorf("director down %s not done 15s after the LMTP transaction ended (the gateway never acknowledged the move)", ips[0])
	}
}
