// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/password"
)

// TestHashLimitQueues: with every slot taken, a check waits; one whose
// context ends first is a temporary failure (never a wrong password), and
// once a slot is free the same login succeeds.
func TestHashLimitQueues(t *testing.T) {
	stored, err := password.Generate("SHA512-CRYPT", "secret", password.Params{})
	if err != nil {
		t.Fatal(err)
	}
	c := chain(entry(&fakeDB{users: map[string]auth.Fields{"alice": {"password": stored}}}))
	c.HashLimit = NewHashLimit(1)
	release, err := c.HashLimit.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err := c.Verify(ctx, &auth.Request{User: "alice", Password: "secret", Service: "imap"})
	if auth.KindOf(err) != auth.KindTemporary {
		t.Fatalf("with no slot free: %+v, %v; want a temporary failure", res, err)
	}

	done := make(chan error, 1)
	go func() {
		res, err := verify(t, c, "alice", "secret")
		if err == nil && res.Status != auth.StatusOK {
			t.Errorf("status %v", res.Status)
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("check ran while the only slot was taken (%v)", err)
	case <-time.After(50 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Users without a stored password to check, or with a fast one, take
	// no slot.
	c.Entries = []Entry{entry(&fakeDB{users: map[string]auth.Fields{
		"bob":   {"nopassword": "y"},
		"carol": {"password": "{SSHA}" + sshaOf(t, "pw")},
	}})}
	release, _ = c.HashLimit.acquire(context.Background())
	defer release()
	if res, err := verify(t, c, "bob", "anything"); err != nil || res.Status != auth.StatusOK {
		t.Fatalf("nopassword user: %+v, %v", res, err)
	}
	if res, err := verify(t, c, "carol", "pw"); err != nil || res.Status != auth.StatusOK {
		t.Fatalf("SSHA user while the slot is taken: %+v, %v", res, err)
	}
}

// TestHashLimitBounds runs many logins through a limit of 3 and watches
// how many hold a slot at once.
func TestHashLimitBounds(t *testing.T) {
	l := NewHashLimit(3)
	var cur, peak atomic.Int32
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := l.acquire(context.Background())
			if err != nil {
				t.Error(err)
				return
			}
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			cur.Add(-1)
			release()
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 3 || p < 1 {
		t.Fatalf("%d checks at once under a limit of 3", p)
	}
	var none *HashLimit
	release, err := none.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	release()
}

func sshaOf(t *testing.T, plain string) string {
	t.Helper()
	h, err := password.Generate("SSHA", plain, password.Params{})
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(h, "{SSHA}")
}
