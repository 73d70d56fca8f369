// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func etcdClient(t *testing.T, endpoints []string) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func put(t *testing.T, c *clientv3.Client, k, v string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Put(ctx, k, v); err != nil {
		t.Fatalf("put %s: %v", k, err)
	}
}

func get(t *testing.T, c *clientv3.Client, k string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Get(ctx, k) // linearizable
	if err != nil {
		t.Fatalf("get %s: %v", k, err)
	}
	if len(r.Kvs) == 0 {
		return ""
	}
	return string(r.Kvs[0].Value)
}

func TestEtcdSingleMemberStopKillRestart(t *testing.T) {
	e := StartEtcd(t)
	if eps := e.Endpoints(); len(eps) != 1 || eps[0] != e.ClientURL() {
		t.Fatalf("Endpoints() = %v", eps)
	}
	c := etcdClient(t, e.Endpoints())
	put(t, c, "k", "v1")
	e.Stop()
	if e.Running() {
		t.Fatal("running after Stop")
	}
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "k"); got != "v1" {
		t.Fatalf("after Stop and Restart: k = %q, want v1", got)
	}
	put(t, c, "k", "v2")
	e.Kill()
	if err := e.Healthy(); err == nil {
		t.Fatal("healthy after Kill")
	}
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "k"); got != "v2" {
		t.Fatalf("after Kill and Restart: k = %q, want v2", got)
	}
	// Restart of a running member stops it first.
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	if got := get(t, c, "k"); got != "v2" {
		t.Fatalf("after a restart while running: k = %q, want v2", got)
	}
}

func TestEtcdClusterSurvivesAMember(t *testing.T) {
	cl := StartEtcdCluster(t, 3)
	if got := len(cl.Endpoints()); got != 3 {
		t.Fatalf("%d endpoints", got)
	}
	c := etcdClient(t, cl.Endpoints())
	put(t, c, "k", "v1")
	m0 := cl.Member(0)
	m0.Kill()
	if err := cl.WaitHealthy(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	put(t, c, "k", "v2") // two of three: a quorum
	cl.Member(1).Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	_, err := c.Get(ctx, "k") // linearizable: needs a quorum (a put would too, but might commit later)
	cancel()
	if err == nil {
		t.Fatal("linearizable get with one member of three succeeded")
	}
	if err := m0.Restart(); err != nil { // a quorum again: m0 and m2
		t.Fatal(err)
	}
	// m0 alone answers with what it missed while down
	if got := get(t, etcdClient(t, m0.Endpoints()), "k"); got != "v2" {
		t.Fatalf("restarted member: k = %q, want v2", got)
	}
	if err := cl.Member(1).Restart(); err != nil {
		t.Fatal(err)
	}
	put(t, etcdClient(t, cl.Member(1).Endpoints()), "k", "v4")
	if got := get(t, c, "k"); got != "v4" {
		t.Fatalf("k = %q, want v4", got)
	}
}

// TestCutProxyCutsAnEtcdClient is the use the proxy is for: an etcd client
// (gRPC over HTTP/2, a watch stream open) behind a CutProxy is cut off,
// misses nothing once restored.
func TestCutProxyCutsAnEtcdClient(t *testing.T) {
	e := StartEtcd(t)
	direct := etcdClient(t, e.Endpoints())
	p := NewCutProxy(t, e.ClientAddr())
	c := etcdClient(t, []string{"http://" + p.Addr()})
	put(t, c, "k", "v1")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wch := c.Watch(ctx, "k")
	put(t, direct, "k", "v2")
	expect := func(want string, timeout time.Duration) {
		t.Helper()
		select {
		case r, ok := <-wch:
			if !ok || r.Err() != nil || len(r.Events) == 0 || string(r.Events[0].Kv.Value) != want {
				t.Fatalf("watch: %v %v %+v, want %s", ok, r.Err(), r.Events, want)
			}
		case <-time.After(timeout):
			t.Fatalf("watch: no %s after %v", want, timeout)
		}
	}
	expect("v2", 5*time.Second)

	p.Cut()
	gctx, gcancel := context.WithTimeout(context.Background(), time.Second)
	_, err := c.Get(gctx, "k")
	gcancel()
	if err == nil {
		t.Fatal("get through a cut proxy succeeded")
	}
	t.Logf("get while cut: %v", err)
	put(t, direct, "k", "v3")
	select {
	case r := <-wch:
		t.Fatalf("watch event while cut: %+v", r)
	case <-time.After(500 * time.Millisecond):
	}

	start := time.Now()
	p.Restore()
	expect("v3", 30*time.Second) // the watch resumes from its revision
	t.Logf("watch resumed %v after Restore", time.Since(start))
	if got := get(t, c, "k"); got != "v3" {
		t.Fatalf("k = %q, want v3", got)
	}
}
