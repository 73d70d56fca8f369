// SPDX-License-Identifier: Apache-2.0

package etcdstore_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/maildirector/maildirector/director/store/embedded"
	"github.com/maildirector/maildirector/director/store/etcdstore"
)

type leader interface {
	Lead(ctx context.Context, name string, fn func(ctx context.Context)) error
}

// TestLead: of two gateways campaigning, one leads at a time; one that
// stops resigns and the other leads at once; one whose lease goes loses
// the lead (its fn's context ends) and campaigns again.
func TestLead(t *testing.T) {
	dir := t.TempDir()
	m, err := embedded.Start(embedded.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ep := []string{embedded.Endpoint(dir)}

	var mu sync.Mutex
	leading := map[int]context.Context{}
	terms := map[int]int{}
	stores := make([]*etcdstore.Store, 2)
	cancels := make([]context.CancelFunc, 2)
	dones := make([]chan error, 2)
	for i := range stores {
		stores[i] = Open(t, ep, 3*time.Second).(*etcdstore.Store)
		t.Cleanup(func() { stores[i].Close() })
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i], dones[i] = cancel, make(chan error, 1)
		go func() {
			dones[i] <- any(stores[i]).(leader).Lead(ctx, "test", func(lctx context.Context) {
				mu.Lock()
				leading[i] = lctx
				terms[i]++
				n := len(leading)
				mu.Unlock()
				if n > 1 {
					t.Errorf("two leaders at once")
				}
				<-lctx.Done()
				mu.Lock()
				delete(leading, i)
				mu.Unlock()
			})
		}()
	}
	t.Cleanup(func() {
		for _, c := range cancels {
			c()
		}
	})
	current := func() (int, context.Context) {
		mu.Lock()
		defer mu.Unlock()
		for i, c := range leading {
			return i, c
		}
		return -1, nil
	}
	waitLeader := func(not int, within time.Duration) (int, context.Context) {
		t.Helper()
		deadline := time.Now().Add(within)
		for {
			if i, c := current(); i >= 0 && i != not {
				return i, c
			}
			if time.Now().After(deadline) {
				t.Fatalf("no leader (other than %d) within %v", not, within)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	first, _ := waitLeader(-1, 5*time.Second)
	time.Sleep(500 * time.Millisecond)
	if i, _ := current(); i != first {
		t.Fatalf("the lead moved from %d to %d by itself", first, i)
	}

	// The leader stops: it resigns, the other leads well before the lease
	// (3s) could have lapsed.
	start := time.Now()
	cancels[first]()
	if err := <-dones[first]; err != context.Canceled {
		t.Fatalf("Lead returned %v", err)
	}
	second, lctx := waitLeader(first, 5*time.Second)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("takeover after %v: the stopping leader did not resign", d)
	}

	// The leader's lease goes (as when it is cut off long enough): its fn
	// ends, and it campaigns and leads again (alone now).
	cli := stores[second].Client()
	resp, err := cli.Get(context.Background(), "/test/"+strings.ReplaceAll(t.Name(), "/", "_")+"/elections/test/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("election keys: %v %v", resp, err)
	}
	if _, err := cli.Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the leader whose lease went still leads")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		again := terms[second] >= 2 && leading[second] != nil
		mu.Unlock()
		if again {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no second term after the lease went")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
