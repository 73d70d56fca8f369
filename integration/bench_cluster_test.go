// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/maildirector/maildirector/director/store/embedded"
	"github.com/maildirector/maildirector/integration/harness"
)

// BenchmarkClusterLogin measures whole IMAP logins (connect, LOGIN,
// LOGOUT; 8 clients) with the director's state in each store, side by
// side in one run on the same backends: memory (one process), the
// embedded etcd member (the default), and three gateways on one Debian
// etcd with the clients spread over them. "new" logins are users without
// an assignment, "sticky" ones users who have one. It reports logins/s
// and etcd writes per login (the store's revision count, which every
// write transaction moves by one).
//
//	go test ./integration -run '^$' -bench ClusterLogin -benchtime 2000x
func BenchmarkClusterLogin(b *testing.B) {
	const users = 8000
	e := startBackends(b, []string{"127.0.0.11", "127.0.0.12"}, users)
	var etcd *harness.Etcd
	rates := map[string]float64{}
	var firstUser atomic.Int64 // users never logged in before start here
	// "memory-3-gateways" shares nothing (each gateway its own memory
	// store): not a cluster, but it shows what three gateway processes
	// cost on this box apart from the store.
	for _, store := range []string{"memory", "embedded", "memory-3-gateways", "etcd-3-gateways"} {
		// Gateways for this store.
		var addrs []string
		var pids []int // the gateways, then etcd's (for CPU per login)
		var cli *clientv3.Client
		n := 1
		if strings.HasSuffix(store, "-3-gateways") {
			n = 3
		}
		if store == "etcd-3-gateways" {
			if etcd == nil {
				etcd = harness.StartEtcd(b)
			}
		}
		for i := 0; i < n; i++ {
			g := *e
			g.dir = filepath.Join(e.dir, store+strconv.Itoa(i))
			os.MkdirAll(g.dir, 0o755)
			switch store {
			case "memory", "memory-3-gateways":
				g.directorExtra = "  store: memory\n"
			case "embedded":
				g.dataDir = shortTempDir(b)
			default:
				g.directorExtra = fmt.Sprintf("  store: etcd\n  name: gw%d\n  etcd: {endpoints: [%s]}\n", i, strings.Join(etcd.Endpoints(), ", "))
			}
			g.startGateway(b, "proxy=y nopassword=y", trusted+"log: {level: warn}\n")
			addrs = append(addrs, g.gwAddr)
			pids = append(pids, g.gw.Pid())
			if store == "embedded" {
				c, err := embedded.Dial(g.dataDir, nil)
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				cli = c
			}
		}
		if store == "etcd-3-gateways" {
			c, err := clientv3.New(clientv3.Config{Endpoints: etcd.Endpoints(), DialTimeout: 5 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			cli = c
		}
		etcdPid := 0
		if store == "etcd-3-gateways" {
			etcdPid = pidOf(etcd.DataDir)
		}
		revision := func() int64 {
			if cli == nil {
				return 0
			}
			r, err := cli.Get(context.Background(), "/nothing")
			if err != nil {
				b.Fatal(err)
			}
			return r.Header.Revision
		}
		for _, kind := range []string{"new", "sticky"} {
			b.Run(store+"/"+kind, func(b *testing.B) {
				var next atomic.Int64
				base := int64(0)
				if kind == "new" {
					base = firstUser.Load()
					if base+int64(b.N) > users {
						b.Skipf("%d new users needed, %d left", b.N, users-base)
					}
					firstUser.Add(int64(b.N))
				} else {
					// Warm up: give the 64 sticky users their assignments.
					for i := 0; i < 64; i++ {
						u := userName(users - 1 - i)
						c := dial(b, addrs[i%len(addrs)], "")
						c.login(u, password(u))
						c.ok("LOGOUT")
						c.close()
					}
					time.Sleep(1500 * time.Millisecond) // let batched refreshes land
				}
				rev0 := revision()
				cpu0, etcd0 := cpuTicks(pids...), cpuTicks(etcdPid)
				b.SetParallelism(4) // 4 x GOMAXPROCS(2) = 8 clients
				b.ResetTimer()
				start := time.Now()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := next.Add(1)
						u := userName(int(base + i - 1))
						if kind == "sticky" {
							u = userName(users - 1 - int(i%64))
						}
						c := dial(b, addrs[int(i)%len(addrs)], "")
						if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK") {
							b.Errorf("login %s: %s", u, st)
						}
						c.ok("LOGOUT")
						c.close()
					}
				})
				elapsed := time.Since(start)
				b.StopTimer()
				// CPU time per login: the gateways' own (their rusage as
				// /proc shows it, 100 ticks a second), and etcd's.
				b.ReportMetric(float64(cpuTicks(pids...)-cpu0)*10/float64(b.N)*1000, "gw-cpu-µs/login")
				if etcdPid != 0 {
					b.ReportMetric(float64(cpuTicks(etcdPid)-etcd0)*10/float64(b.N)*1000, "etcd-cpu-µs/login")
				}
				time.Sleep(1500 * time.Millisecond) // batched refreshes of the logouts
				writes := float64(revision()-rev0) / float64(b.N)
				rate := float64(b.N) / elapsed.Seconds()
				rates[store+"/"+kind] = rate
				b.ReportMetric(rate, "logins/s")
				b.ReportMetric(writes, "etcd-writes/login")
			})
		}
	}
	for _, kind := range []string{"new", "sticky"} {
		if m := rates["memory/"+kind]; m > 0 {
			m3 := rates["memory-3-gateways/"+kind]
			b.Logf("%s logins/s: memory %.0f, embedded %.0f (%.2f); 3 gateways sharing nothing %.0f, 3 gateways on etcd %.0f (%.2f of memory, %.2f of 3 gateways sharing nothing)", kind,
				m, rates["embedded/"+kind], rates["embedded/"+kind]/m, m3, rates["etcd-3-gateways/"+kind], rates["etcd-3-gateways/"+kind]/m, rates["etcd-3-gateways/"+kind]/m3)
		}
	}
}

// cpuTicks sums user and system CPU time of pids, in clock ticks (1/100 s).
func cpuTicks(pids ...int) int64 {
	var n int64
	for _, pid := range pids {
		if pid == 0 {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command name (which may hold spaces).
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseInt(f[11], 10, 64)
			s, _ := strconv.ParseInt(f[12], 10, 64)
			n += u + s
		}
	}
	return n
}

// pidOf finds the process whose command line mentions s.
func pidOf(s string) int {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if strings.Contains(string(cmd), s) && strings.HasPrefix(filepath.Base(strings.Split(string(cmd), "\x00")[0]), "etcd") {
			return pid
		}
	}
	return 0
}
