// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/integration/harness"
)

// BenchmarkLogin measures whole logins (connect, greeting, LOGIN, LOGOUT)
// straight to a Dovecot backend and through the gateway to the same
// backends, side by side, 8 clients in parallel, and reports the ratio.
//
//	go test ./integration -run '^$' -bench Login -benchtime 2000x
func BenchmarkLogin(b *testing.B) {
	e := startBackends(b, []string{"127.0.0.11", "127.0.0.12"}, 64)
	e.startGateway(b, "proxy=y nopassword=y", trusted+"log: {level: warn}\n")
	var perOp = map[string]time.Duration{}
	for _, mode := range []string{"direct", "gateway"} {
		b.Run(mode, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(4) // 4 x GOMAXPROCS(2) = 8 clients
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					u := userName(int(next.Add(1)) % 64)
					addr := e.gwAddr
					if mode == "direct" {
						addr = e.backendByIP(e.ringBackend(u)).IMAPAddr()
					}
					c := dial(b, addr, "")
					if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK") {
						b.Errorf("login: %s", st)
					}
					c.ok("LOGOUT")
					c.close()
				}
			})
			perOp[mode] = time.Since(start) / time.Duration(b.N)
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
		})
	}
	if perOp["direct"] > 0 && perOp["gateway"] > 0 {
		b.Logf("logins/s through the gateway ÷ straight to the backend = %.2f", float64(perOp["direct"])/float64(perOp["gateway"]))
	}
}

// BenchmarkIdleSessionMemory opens b.N idle relayed sessions through the
// gateway and reports the gateway's resident memory and open fds per
// session (from /proc, so it counts goroutine stacks, buffers and TLS
// state), over cleartext IMAP and over imaps.
//
//	go test ./integration -run '^$' -bench IdleSessionMemory -benchtime 1000x
func BenchmarkIdleSessionMemory(b *testing.B) {
	for _, tlsOn := range []bool{false, true} {
		name := "imap"
		if tlsOn {
			name = "imaps"
		}
		b.Run(name, func(b *testing.B) { benchIdleSessions(b, tlsOn) })
	}
}

func benchIdleSessions(b *testing.B, tlsOn bool) {
	e := startBackends(b, []string{"127.0.0.11", "127.0.0.12"}, 64)
	open := func(i int) *client { return dial(b, e.gwAddr, clientIP(i)) }
	if tlsOn {
		cert, key, err := harness.WriteSelfSignedCert(e.dir, "localhost", "127.0.0.1")
		if err != nil {
			b.Fatal(err)
		}
		port, err := harness.FreePort("127.0.0.1")
		if err != nil {
			b.Fatal(err)
		}
		e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
		e.startGatewayWith(b, fmt.Sprintf("  - {protocol: imaps, address: %q}\n", e.gwAddr),
			"proxy=y nopassword=y", fmt.Sprintf("tls: {cert: %q, key: %q}\nlog: {level: warn}\n", cert, key))
		open = func(i int) *client {
			d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP(i))}}
			conn, err := tls.DialWithDialer(d, "tcp", e.gwAddr, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				b.Fatal(err)
			}
			return wrapClient(b, conn)
		}
	} else {
		e.startGateway(b, "proxy=y nopassword=y", trusted+"log: {level: warn}\n")
	}
	// Warm up: one session so that one-time allocations are not counted.
	w := open(0)
	w.login(userName(0), password(userName(0)))
	w.ok("LOGOUT")
	w.close()
	time.Sleep(200 * time.Millisecond)
	before, fdsBefore := rssKiB(b, e.gw.Pid()), fdCount(b, e.gw.Pid())
	clients := make([]*client, b.N)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			u := userName(i % 64)
			c := open(i)
			if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK") {
				b.Errorf("login: %s", st)
			}
			c.ok("SELECT INBOX")
			clients[i] = c
		}(i)
	}
	wg.Wait()
	time.Sleep(time.Second) // let the GC settle
	after, fdsAfter := rssKiB(b, e.gw.Pid()), fdCount(b, e.gw.Pid())
	b.ReportMetric(float64(after-before)/float64(b.N), "KiB-RSS/session")
	b.ReportMetric(float64(fdsAfter-fdsBefore)/float64(b.N), "fds/session")
	b.Logf("gateway RSS %d KiB idle, %d KiB with %d relayed sessions", before, after, b.N)
	// The sessions must still work after sitting idle.
	for i, c := range clients {
		if c != nil && i%50 == 0 {
			c.ok("NOOP")
		}
	}
	for _, c := range clients {
		if c != nil {
			c.close()
		}
	}
}

// fdCount counts pid's open file descriptors (sockets, and the pipes that
// splice holds while a plain-TCP relay waits).
func fdCount(b *testing.B, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		b.Fatal(err)
	}
	return len(ents)
}

// rssKiB reads VmRSS of pid.
func rssKiB(b *testing.B, pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkLDAPVerify measures LDAP-backed authentications per second
// through the passdb chain as the gateway builds it (search as the bind
// account, then the stored {SSHA} / SHA512-CRYPT / ... checked here), with
// the auth cache off and on, 8 in parallel.
//
//	go test ./integration -run '^$' -bench LDAPVerify -benchtime 2000x
func BenchmarkLDAPVerify(b *testing.B) {
	s := startSlapd(b)
	file := ldapConfExt(b, s, "bench-ldap.conf.ext", "")
	for _, mode := range []struct{ name, auth string }{
		{"cache-off", ""},
		{"cache-on", "auth: {cache: {size: 10M, ttl: 1h}}\n"},
	} {
		dbs := buildChain(b, mode.auth+fmt.Sprintf("passdb: [{driver: ldap, args: %q}]\n", file))
		b.Run(mode.name, func(b *testing.B) {
			var next atomic.Int64
			b.SetParallelism(4)
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					// 64 users, so that the cache has something to hit.
					n := int(next.Add(1) % 64)
					res, err := verifyPlain(b, dbs, "", seedUser(n), seedPassword(n))
					if err != nil || res.Status != auth.StatusOK {
						b.Errorf("%s: %v %v", seedUser(n), res.Status, err)
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
		})
	}
}
