// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/maildirector/maildirector/director/store/embedded"
	"github.com/maildirector/maildirector/director/store/etcdstore"
	"github.com/maildirector/maildirector/integration/harness"
)

// Cluster kinds: the embedded member alone or three of them peered (the
// gateways' own, here in processes of their own), or Debian's etcd 3.4
// with one or three members.
const (
	embedded1 = "embedded1"
	embedded3 = "embedded3"
	etcd1     = "etcd1"
	etcd3     = "etcd3"
)

// cluster is a running etcd cluster and the benchmark's own client of it.
type cluster struct {
	kind      string
	dir       string
	members   []*child // embedded members
	etcd      *harness.EtcdCluster
	endpoints []string // each member's client endpoint
	cli       *clientv3.Client
}

// startCluster starts a cluster of kind under dir.
func startCluster(t *runTB, kind, dir string) *cluster {
	c := &cluster{kind: kind, dir: dir}
	switch kind {
	case embedded1, embedded3:
		n := 1
		if kind == embedded3 {
			n = 3
		}
		var peers, initial []string
		for i := 0; i < n && n > 1; i++ {
			ip := fmt.Sprintf("127.0.0.%d", 41+i)
			port, err := harness.FreePort(ip)
			if err != nil {
				t.Fatal(err)
			}
			peers = append(peers, "http://"+net.JoinHostPort(ip, strconv.Itoa(port)))
			initial = append(initial, fmt.Sprintf("m%d=%s", i, peers[i]))
		}
		for i := 0; i < n; i++ {
			// A short path: the member's socket must fit a sun_path.
			data, err := os.MkdirTemp("", "sb")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(data) })
			args := []string{"-role", "member", "-data", data, "-name", fmt.Sprintf("m%d", i)}
			if n > 1 {
				args = append(args, "-peer", peers[i], "-cluster", strings.Join(initial, ","))
			}
			m, err := spawnChild(fmt.Sprintf("member m%d", i), filepath.Join(dir, fmt.Sprintf("member%d.log", i)), args...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(m.stop)
			c.members = append(c.members, m)
			c.endpoints = append(c.endpoints, embedded.Endpoint(data))
		}
		for _, m := range c.members {
			if _, err := m.waitReady(90 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
	case etcd1, etcd3:
		n := 1
		if kind == etcd3 {
			n = 3
		}
		c.etcd = harness.StartEtcdCluster(t, n, harness.EtcdOptions{Dir: filepath.Join(dir, kind), LogLevel: "warn"})
		c.endpoints = c.etcd.Endpoints()
	default:
		t.Fatalf("unknown cluster kind %q (embedded1, embedded3, etcd1, etcd3)", kind)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	c.cli = cli
	return c
}

// gatewayEndpoint is the endpoint gateway i uses: its own member when
// every gateway has one (embedded3), else the members in turn.
func (c *cluster) gatewayEndpoint(i int) string { return c.endpoints[i%len(c.endpoints)] }

// memberPids returns the processes holding the members.
func (c *cluster) memberPids() []int {
	var pids []int
	for _, m := range c.members {
		pids = append(pids, m.Pid())
	}
	if c.etcd != nil {
		for _, m := range c.etcd.Members {
			pids = append(pids, pidByCmdline("etcd", m.DataDir))
		}
	}
	return pids
}

// memberCPU sums the members' CPU time.
func (c *cluster) memberCPU() time.Duration {
	var sum time.Duration
	for _, m := range c.members {
		if r, err := m.call(request{Op: "cpu"}); err == nil {
			sum += time.Duration(r.CPUNS)
		}
	}
	if c.etcd != nil {
		for _, pid := range c.memberPids() {
			sum += procCPU(pid)
		}
	}
	return sum
}

// memberMem is each member's memory: the Go heap after a collection for
// the embedded ones, and every member's PSS.
type memberMem struct {
	HeapAlloc uint64 `json:"heap_alloc,omitempty"`
	PSSKiB    int64  `json:"pss_kib"`
}

func (c *cluster) memberMem() []memberMem {
	var out []memberMem
	for _, m := range c.members {
		r, _ := m.call(request{Op: "mem"})
		out = append(out, memberMem{HeapAlloc: r.HeapAlloc, PSSKiB: r.PSSKiB})
	}
	if c.etcd != nil {
		for _, pid := range c.memberPids() {
			pm, _ := readMem(pid)
			out = append(out, memberMem{PSSKiB: pm.PSS})
		}
	}
	return out
}

func (c *cluster) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 2*time.Minute)
}

// revision is the store's revision: every write transaction moves it by
// one.
func (c *cluster) revision() (int64, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.cli.Get(ctx, "/scalebench/nothing")
	if err != nil {
		return 0, err
	}
	return r.Header.Revision, nil
}

// users counts the stored assignments.
func (c *cluster) users() (int64, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.cli.Get(ctx, etcdstore.DefaultPrefix+"users/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, err
	}
	return r.Count, nil
}

// dbSize is the first member's database: the file's size and the part of
// it in use (etcd's maintenance Status).
func (c *cluster) dbSize() (size, inUse int64, err error) {
	ctx, cancel := c.ctx()
	defer cancel()
	st, err := c.cli.Status(ctx, c.endpoints[0])
	if err != nil {
		return 0, 0, err
	}
	return st.DbSize, st.DbSizeInUse, nil
}

// stalls is the longest a read and a lease renewal waited for the
// member while something else ran.
type stalls struct {
	Read    time.Duration `json:"read_ns"`
	Renewal time.Duration `json:"renewal_ns"`
}

// probe reads and renews a lease on the first member back to back until
// stop is closed, and returns the longest waits.
func (c *cluster) probe(stop chan struct{}) <-chan stalls {
	out := make(chan stalls, 1)
	go func() {
		var st stalls
		ctx, cancel := c.ctx()
		defer cancel()
		g, err := c.cli.Grant(ctx, 60)
		if err != nil {
			out <- st
			return
		}
		defer c.cli.Revoke(context.Background(), g.ID)
		for {
			select {
			case <-stop:
				out <- st
				return
			default:
			}
			t0 := time.Now()
			c.cli.Get(ctx, "/scalebench/probe")
			t1 := time.Now()
			c.cli.KeepAliveOnce(ctx, g.ID)
			st.Read = max(st.Read, t1.Sub(t0))
			st.Renewal = max(st.Renewal, time.Since(t1))
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return out
}

// compactDefrag drops the history before the current revision and
// defragments every member, so that the database holds what is stored
// now. It returns how long each step took and the longest a read and a
// lease renewal waited meanwhile.
func (c *cluster) compactDefrag() (compact, defrag time.Duration, compactStall, defragStall stalls, err error) {
	rev, err := c.revision()
	if err != nil {
		return
	}
	ctx, cancel := c.ctx()
	defer cancel()
	stop := make(chan struct{})
	probed := c.probe(stop)
	time.Sleep(100 * time.Millisecond)
	t0 := time.Now()
	if _, err = c.cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil && !strings.Contains(err.Error(), "compacted") {
		close(stop)
		<-probed
		err = fmt.Errorf("compact: %w", err)
		return
	}
	t1 := time.Now()
	close(stop)
	compactStall = <-probed
	stop = make(chan struct{})
	probed = c.probe(stop)
	time.Sleep(100 * time.Millisecond)
	t2 := time.Now()
	for _, ep := range c.endpoints {
		if _, err = c.cli.Defragment(ctx, ep); err != nil {
			close(stop)
			<-probed
			err = fmt.Errorf("defragment %s: %w", ep, err)
			return
		}
	}
	defrag = time.Since(t2)
	close(stop)
	defragStall = <-probed
	return t1.Sub(t0), defrag, compactStall, defragStall, nil
}

// oneAssignment returns a stored assignment's key and value as stored.
func (c *cluster) oneAssignment() (key, value string, err error) {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.cli.Get(ctx, etcdstore.DefaultPrefix+"users/", clientv3.WithPrefix(), clientv3.WithLimit(1))
	if err != nil {
		return "", "", err
	}
	if len(r.Kvs) == 0 {
		return "", "", fmt.Errorf("no assignment stored")
	}
	return string(r.Kvs[0].Key), string(r.Kvs[0].Value), nil
}

// gateway starts a gateway process on member i's endpoint.
func (c *cluster) gateway(t *runTB, name string, i int, expire time.Duration) (*child, reply) {
	g, r, err := startChild(name, filepath.Join(c.dir, name+".log"), 2*time.Minute,
		"-role", "gateway", "-name", name, "-endpoints", c.gatewayEndpoint(i), "-user-expire", expire.String())
	if err != nil {
		t.Fatal(err)
	}
	if r.Fenced {
		g.stop()
		t.Fatalf("%s is fenced after its start", name)
	}
	return g, r
}
