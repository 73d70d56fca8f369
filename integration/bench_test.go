// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
// gateway and reports what each costs the gateway process, over cleartext
// IMAP and over imaps: proportional set size (PSS, from smaps_rollup: the
// process's own pages, its share of shared ones; what the table
// compares with nginx) and resident size, open fds, and the Go runtime's
// own view after a GC (live heap, goroutine stacks, goroutines), read from
// the gateway's pprof door on its admin listener. With MD_BENCH_PROFILE=DIR
// the heap profile and a goroutine dump of the gateway holding the
// sessions are saved there (go tool pprof -sample_index=inuse_space).
//
//	go test ./integration -run '^$' -bench IdleSessionMemory -benchtime 1000x
//	go test ./integration -run '^$' -bench IdleSessionMemory/imap$ -benchtime 5000x
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
	// Each session is a Dovecot imap process: a backend's process_limit
	// (3000 in the harness) must hold its share, which the ring makes
	// uneven.
	ips := []string{"127.0.0.11", "127.0.0.12"}
	for i := 13; len(ips)*1500 < b.N; i++ {
		ips = append(ips, fmt.Sprintf("127.0.0.%d", i))
	}
	e := startBackends(b, ips, 64)
	tokens := filepath.Join(e.dir, "admin-tokens")
	if err := os.WriteFile(tokens, []byte("bench "+adminToken+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	apiPort, err := harness.FreePort("127.0.0.1")
	if err != nil {
		b.Fatal(err)
	}
	api := "127.0.0.1:" + strconv.Itoa(apiPort)
	adminConf := fmt.Sprintf("admin:\n  listen: %q\n  token_file: %s\nlog: {level: warn}\n", api, tokens)
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
			"proxy=y nopassword=y", fmt.Sprintf("tls: {cert: %q, key: %q}\n", cert, key)+adminConf)
		open = func(i int) *client {
			d := &net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP(i))}}
			conn, err := tls.DialWithDialer(d, "tcp", e.gwAddr, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				b.Fatal(err)
			}
			return wrapClient(b, conn)
		}
	} else {
		e.startGateway(b, "proxy=y nopassword=y", trusted+adminConf)
	}
	pid := e.gw.Pid()
	// Warm up: one session so that one-time allocations are not counted.
	w := open(0)
	w.login(userName(0), password(userName(0)))
	w.ok("LOGOUT")
	w.close()
	rtBefore := runtimeStats(b, api)
	time.Sleep(200 * time.Millisecond)
	before := processStats(b, pid)
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
	after := processStats(b, pid)
	rtAfter := runtimeStats(b, api)
	n := float64(b.N)
	b.ReportMetric(float64(after.pss-before.pss)/n, "KiB-PSS/session")
	b.ReportMetric(float64(after.rss-before.rss)/n, "KiB-RSS/session")
	b.ReportMetric(float64(after.fds-before.fds)/n, "fds/session")
	b.ReportMetric(float64(rtAfter.heap-rtBefore.heap)/n, "B-heap/session")
	b.ReportMetric(float64(rtAfter.stack-rtBefore.stack)/n, "B-stack/session")
	b.ReportMetric(float64(rtAfter.goroutines-rtBefore.goroutines)/n, "goroutines/session")
	b.Logf("gateway PSS %d KiB / RSS %d KiB idle, %d / %d KiB with %d relayed sessions; heap %d -> %d B, stacks %d -> %d B, goroutines %d -> %d",
		before.pss, before.rss, after.pss, after.rss, b.N, rtBefore.heap, rtAfter.heap, rtBefore.stack, rtAfter.stack, rtBefore.goroutines, rtAfter.goroutines)
	var more []string
	for _, k := range []string{"HeapInuse", "HeapIdle", "HeapReleased", "NextGC", "GCSys", "OtherSys", "MSpan", "Sys"} {
		more = append(more, fmt.Sprintf("%s %+d", k, (rtAfter.mem[k]-rtBefore.mem[k])/int64(b.N)))
	}
	b.Logf("per session, runtime.MemStats: %s", strings.Join(more, ", "))
	if dir := os.Getenv("MD_BENCH_PROFILE"); dir != "" {
		name := strings.ReplaceAll(b.Name(), "/", "_")
		for _, p := range []struct{ path, file string }{
			{"/debug/pprof/heap?gc=1", name + ".heap.pb.gz"},
			{"/debug/pprof/goroutine?debug=1", name + ".goroutines.txt"},
		} {
			if err := os.WriteFile(filepath.Join(dir, p.file), adminGet(b, api, p.path), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
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

// procStats is what the kernel says a process holds: KiB of PSS and RSS,
// and open fds (sockets, and the pipes a splice holds while it waits).
type procStats struct{ pss, rss, fds int }

func processStats(b *testing.B, pid int) procStats {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		b.Fatal(err)
	}
	s := procStats{pss: -1, rss: -1, fds: len(ents)}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.Atoi(f[1])
		switch f[0] {
		case "Pss:":
			s.pss = n
		case "Rss:":
			s.rss = n
		}
	}
	if s.pss < 0 || s.rss < 0 {
		b.Fatalf("no Pss/Rss in smaps_rollup:\n%s", data)
	}
	return s
}

// rtStats is the Go runtime's count in the gateway after a GC: live heap
// bytes, goroutine stack bytes, goroutines; mem keeps the rest of
// runtime.MemStats' byte figures, for the log.
type rtStats struct {
	heap, stack, goroutines int64
	mem                     map[string]int64
}

// runtimeStats asks the gateway's pprof door: the heap profile's text
// form ends with runtime.MemStats (gc=1 collects first, so HeapAlloc is
// what is live), the goroutine profile starts with the total.
func runtimeStats(b *testing.B, api string) rtStats {
	s := rtStats{mem: map[string]int64{}}
	heap := string(adminGet(b, api, "/debug/pprof/heap?gc=1&debug=1"))
	for _, line := range strings.Split(heap, "\n") {
		// "# HeapAlloc = 123", "# Stack = 456 / 789" (in use / from the OS)
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[2] == "=" {
			s.mem[f[1]], _ = strconv.ParseInt(f[3], 10, 64)
		}
	}
	s.heap, s.stack = s.mem["HeapAlloc"], s.mem["Stack"]
	g := string(adminGet(b, api, "/debug/pprof/goroutine?debug=1"))
	if rest, ok := strings.CutPrefix(g, "goroutine profile: total "); ok {
		rest, _, _ = strings.Cut(rest, "\n")
		s.goroutines, _ = strconv.ParseInt(rest, 10, 64)
	}
	if s.heap == 0 || s.stack == 0 || s.goroutines == 0 {
		b.Fatalf("cannot read the runtime's figures from the pprof door:\n%s", lastLines(heap, 40))
	}
	return s
}

func adminGet(b *testing.B, api, path string) []byte {
	req, err := http.NewRequest("GET", "http://"+api+path, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: %s %v", path, resp.Status, err)
	}
	return body
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
