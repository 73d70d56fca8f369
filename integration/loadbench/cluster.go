// SPDX-License-Identifier: Apache-2.0

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/maildirector/maildirector/integration/harness"
)

// Cluster targets: one gateway per store, and three gateways whose
// embedded members peer.
const (
	storeMemory   = "memory"
	storeEmbedded = "embedded"
	storeEtcd     = "etcd"
	storePeered   = "embedded×3"
)

// clusterGW is the gateways of one store and the new users it has seen.
type clusterGW struct {
	t     *target
	addrs []string // their IMAP listeners, used in turn
	// newUsed counts e.newUsers taken by earlier new-user runs: a user is
	// new to a store once.
	newUsed int
	warm    bool // the sticky users have their assignments
}

// clusterCase compares the director's stores: sticky users (assigned
// already) and new users (each login a placement) at 32 clients.
func (e *env) clusterCase() *benchCase {
	gws := map[string]*clusterGW{}
	var order []*target
	var stops []func()
	c := &benchCase{name: "cluster",
		title:   "IMAP logins/s by director store, 32 clients (memory: one gateway; embedded: one gateway on its own etcd member, the default; etcd: one gateway on Debian's etcd; embedded×3: three gateways whose members peer, clients spread over them)",
		targets: func() []*target { return order },
		ratios:  [][2]string{{storeEmbedded, storeMemory}, {storeEtcd, storeMemory}, {storePeered, storeMemory}},
	}
	c.prepare = func() error {
		add := func(name string, g *clusterGW) {
			gws[name] = g
			order = append(order, g.t)
		}
		for _, s := range []string{storeMemory, storeEmbedded, storeEtcd, storePeered} {
			g, stop, err := e.startCluster(s)
			if stop != nil {
				stops = append(stops, stop)
			}
			if err != nil {
				if s == storeEtcd && errors.Is(err, errNoEtcd) {
					add(s, &clusterGW{t: &target{name: s, skip: err.Error()}})
					continue
				}
				return fmt.Errorf("cluster %s: %w", s, err)
			}
			add(s, g)
		}
		return nil
	}
	c.finish = func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	cannot := func(t *target) string { return t.skip }
	sticky := e.measure("cluster sticky", cannot, func(t *target) obs {
		g := gws[t.name]
		var o obs
		if !g.warm {
			// Each sticky user gets its assignment once, before any run.
			for i, u := range e.users {
				if _, err := oneLogin("imap", g.addrs[i%len(g.addrs)], i, u); err != nil {
					o.fail(fmt.Errorf("warm-up %s: %w", u, err))
				}
			}
			g.warm = true
		}
		r := e.loginRun(t, "imap", 32, func(n int64) (string, string, error) {
			return e.users[int(n)%len(e.users)], g.addrs[int(n)%len(g.addrs)], nil
		})
		r.merge(&o)
		return r
	})
	fresh := e.measure("cluster new", cannot, func(t *target) obs {
		g := gws[t.name]
		var most atomic.Int64
		r := e.loginRun(t, "imap", 32, func(n int64) (string, string, error) {
			for {
				m := most.Load()
				if n <= m || most.CompareAndSwap(m, n) {
					break
				}
			}
			i := g.newUsed + int(n) - 1
			if i >= len(e.newUsers) {
				return "", "", fmt.Errorf("all %d new users used: raise --new-users", len(e.newUsers))
			}
			return e.newUsers[i], g.addrs[int(n)%len(g.addrs)], nil
		})
		g.newUsed += int(most.Load())
		return r
	})
	c.rows = []row{
		{label: "sticky-user IMAP logins/s", unit: "logins/s", m: sticky, value: "rate"},
		{label: "new-user IMAP logins/s", unit: "logins/s", m: fresh, value: "rate"},
		{label: "gateways' CPU per sticky login (µs; etcd's included)", unit: "µs", lower: true, m: sticky, value: "proxy_cpu"},
		{label: "gateways' CPU per new-user login (µs; etcd's included)", unit: "µs", lower: true, m: fresh, value: "proxy_cpu"},
	}
	return c
}

var errNoEtcd = errors.New("etcd is not installed (Debian: etcd-server)")

// startCluster starts the gateways of one store; stop ends them (and the
// store), also after a failed start.
func (e *env) startCluster(store string) (*clusterGW, func(), error) {
	n := 1
	if store == storePeered {
		n = 3
	}
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	extra := make([]string, n)
	var etcdPid func() int
	switch store {
	case storeMemory:
		extra[0] = "  store: memory\n"
	case storeEtcd:
		if !toolInstalled("etcd") {
			return nil, nil, errNoEtcd
		}
		tb := &standalone{name: "loadbench-etcd"}
		stops = append(stops, tb.close)
		var m *harness.Etcd
		dir := filepath.Join(e.dir, "etcd")
		if err := tb.call(func(tb *standalone) { m = harness.StartEtcd(tb, harness.EtcdOptions{Dir: dir, LogLevel: "warn"}) }); err != nil {
			return nil, stop, err
		}
		extra[0] = fmt.Sprintf("  store: etcd\n  name: gw0\n  etcd: {endpoints: [%s]}\n", m.ClientURL())
		etcdPid = func() int { return childWithArg(m.DataDir) }
	case storePeered:
		var peers, initial []string
		for i := 0; i < n; i++ {
			ip := fmt.Sprintf("127.0.0.%d", 41+i)
			port, err := harness.FreePort(ip)
			if err != nil {
				return nil, stop, err
			}
			peers = append(peers, fmt.Sprintf("http://%s:%d", ip, port))
			initial = append(initial, fmt.Sprintf("gw%d=%s", i, peers[i]))
		}
		for i := range extra {
			extra[i] = fmt.Sprintf("  store: embedded\n  name: gw%d\n  embedded:\n    name: gw%d\n    peer_urls: [%s]\n    initial_cluster: %s\n",
				i, i, peers[i], strings.Join(initial, ","))
		}
	}
	g := &clusterGW{}
	gws := make([]*harness.Gateway, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		addrs, err := freeAddrs("imap")
		if err != nil {
			return nil, stop, err
		}
		g.addrs = append(g.addrs, addrs["imap"])
		dir := filepath.Join(e.dir, "cluster-"+store+strconv.Itoa(i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, stop, err
		}
		data, err := shortDir()
		if err != nil {
			return nil, stop, err
		}
		stops = append(stops, func() { os.RemoveAll(data) })
		yaml := e.gatewayYAML(addrs, data, extra[i])
		// Peered members serve once they have a quorum: start them together.
		wg.Add(1)
		go func() {
			defer wg.Done()
			gws[i], errs[i] = harness.StartGateway(e.bin, dir, yaml, addrs["imap"])
		}()
	}
	wg.Wait()
	for _, gw := range gws {
		if gw != nil {
			stops = append(stops, gw.Stop)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, stop, err
	}
	g.t = &target{name: store, pids: func() []int {
		var pids []int
		for _, gw := range gws {
			pids = append(pids, gw.Pid())
		}
		if etcdPid != nil {
			if p := etcdPid(); p != 0 {
				pids = append(pids, p)
			}
		}
		return pids
	}}
	return g, stop, nil
}

// childWithArg finds this program's child process whose command line
// holds arg (the etcd member harness.StartEtcd started).
func childWithArg(arg string) int {
	for _, pid := range harness.ProcessTree(os.Getpid())[1:] {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(b), arg) {
			return pid
		}
	}
	return 0
}
