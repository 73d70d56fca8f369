// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"log"
	"time"
)

// expiryUserExpire is the shortest user_expire the director takes:
// assignments of users who left expire ten seconds later, and the
// sweeper (once per user_expire, at least once a minute) deletes them.
const expiryUserExpire = 10 * time.Second

// expiryResult follows the gateways' memory through waves of users who
// log in once and leave, while a few stay logged in.
type expiryResult struct {
	Cluster    string `json:"cluster"`
	UserExpire string `json:"user_expire"`
	Wave       int    `json:"users_per_wave"`
	Active     int    `json:"active_users"`
	// Steps, in order: baseline, each wave's peak and the state once
	// the sweeper deleted its expired assignments; the fresh gateway
	// loaded after the first wave expired.
	Steps []expiryStep `json:"steps"`
}

type expiryStep struct {
	Step   string `json:"step"`
	Stored int64  `json:"stored_assignments"`
	// Placer: the gateway that placed the users (and holds the active
	// ones); Observer: a gateway that only saw them through its watch.
	PlacerHeap   uint64 `json:"placer_heap_bytes"`
	ObserverHeap uint64 `json:"observer_heap_bytes"`
	MemberHeap   uint64 `json:"member_heap_bytes"`
	// MemberHeapCompacted: after an explicit compaction (the embedded
	// member compacts history older than an hour by itself).
	MemberHeapCompacted uint64  `json:"member_heap_compacted_bytes,omitempty"`
	WaitedS             float64 `json:"waited_s,omitempty"`
	// The member's database: its file and the part in use, and the file
	// after compaction and defragmentation.
	DBSize   int64 `json:"db_size,omitempty"`
	DBInUse  int64 `json:"db_in_use,omitempty"`
	DBDefrag int64 `json:"db_size_defragmented,omitempty"`
}

// benchExpiry places waves of n users on the embedded member, n/20 of the
// first wave staying logged in, lets the others expire, and measures:
// memory that follows the active users comes back down after each wave;
// memory that follows every user ever seen grows with each wave.
func benchExpiry(t *runTB, dir string, n, waves, conc int) expiryResult {
	active := n / 20
	res := expiryResult{Cluster: embedded1, UserExpire: expiryUserExpire.String(), Wave: n, Active: active}
	c := startCluster(t, embedded1, dir)
	placer, _ := c.gateway(t, "placer", 0, expiryUserExpire)
	t.Cleanup(placer.stop)
	observer, _ := c.gateway(t, "observer", 0, expiryUserExpire)
	t.Cleanup(observer.stop)
	started := time.Now()

	measure := func(step string) expiryStep {
		s := expiryStep{Step: step}
		s.Stored, _ = c.users()
		p, _ := placer.call(request{Op: "mem"})
		o, _ := observer.call(request{Op: "mem"})
		m, _ := c.members[0].call(request{Op: "mem"})
		s.PlacerHeap, s.ObserverHeap, s.MemberHeap = p.HeapAlloc, o.HeapAlloc, m.HeapAlloc
		s.DBSize, s.DBInUse, _ = c.dbSize()
		log.Printf("expiry %s: %d stored; heap placer %.1f MiB, observer %.1f MiB, member %.1f MiB", step, s.Stored,
			mib(s.PlacerHeap), mib(s.ObserverHeap), mib(s.MemberHeap))
		return s
	}
	// waitSwept waits until only the active users' assignments are left.
	waitSwept := func() float64 {
		t0 := time.Now()
		for time.Since(t0) < 3*time.Minute {
			if got, err := c.users(); err == nil && got <= int64(active) {
				break
			}
			time.Sleep(time.Second)
		}
		time.Sleep(3 * time.Second) // the watches deliver the deletions
		return time.Since(t0).Seconds()
	}

	res.Steps = append(res.Steps, measure("baseline"))
	for wave := 1; wave <= waves; wave++ {
		from, hold := (wave-1)*n, 0
		if wave == 1 {
			hold = active
			if _, err := placer.call(request{Op: "acquire", From: from, N: hold, Conc: conc, Hold: true}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := placer.call(request{Op: "acquire", From: from + hold, N: n - hold, Conc: conc})
		if err != nil {
			t.Fatal(err)
		}
		if r.Errors > 0 {
			t.Fatalf("expiry wave %d: %d errors: %s", wave, r.Errors, r.FirstError)
		}
		time.Sleep(2 * time.Second)
		step := fmt.Sprintf("wave %d", wave)
		res.Steps = append(res.Steps, measure(step+" placed"))
		waited := waitSwept()
		s := measure(step + " expired")
		s.WaitedS = waited
		if _, _, _, _, err := c.compactDefrag(); err == nil {
			m, _ := c.members[0].call(request{Op: "mem"})
			s.MemberHeapCompacted = m.HeapAlloc
			s.DBDefrag, _, _ = c.dbSize()
		}
		res.Steps = append(res.Steps, s)
		if wave == 1 {
			fresh, _ := c.gateway(t, "fresh", 0, expiryUserExpire)
			f, _ := fresh.call(request{Op: "mem"})
			fresh.stop()
			res.Steps = append(res.Steps, expiryStep{Step: "fresh gateway after wave 1 expired", Stored: s.Stored, ObserverHeap: f.HeapAlloc})
		}
	}
	log.Printf("expiry: done in %.0f s", time.Since(started).Seconds())
	return res
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
