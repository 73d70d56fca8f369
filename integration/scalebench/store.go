// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"log"
	"sort"
	"sync"
	"time"
)

// storeOptions size the store benchmark.
type storeOptions struct {
	Place int   // new users each gateway places in the rate runs
	Reps  int   // rate runs of each case
	Conc  int   // logins in flight per gateway
	Users []int // known-user counts to measure memory, load time, db size at
}

// storeResult is what one cluster kind measured.
type storeResult struct {
	Cluster string `json:"cluster"`
	// One stored assignment, as etcd holds it.
	AssignmentKey   string `json:"assignment_key"`
	AssignmentValue string `json:"assignment_value"`
	AssignmentBytes int    `json:"assignment_bytes"`
	Rates           []rate `json:"rates"`
	// RateMedians: per case, the run with the median rate, and the
	// range over the runs.
	RateMedians []rateMedian `json:"rate_medians"`
	Scale       []size       `json:"scale"`
	// Per known user, from the largest count against none.
	GatewayHeapPerUser   float64 `json:"gateway_heap_bytes_per_user"`
	FreshHeapPerUser     float64 `json:"fresh_gateway_heap_bytes_per_user"`
	MemberHeapPerUser    float64 `json:"member_heap_bytes_per_user,omitempty"`
	MemberPSSPerUser     float64 `json:"member_pss_bytes_per_user"`
	DBBytesPer100k       float64 `json:"db_bytes_per_100k"`
	DBBytesPer100kDefrag float64 `json:"db_bytes_per_100k_defragmented"`
}

// rate is one throughput run.
type rate struct {
	Case       string  `json:"case"`
	Rep        int     `json:"rep"`
	Gateways   int     `json:"gateways"`
	Conc       int     `json:"conc_per_gateway"`
	Logins     int     `json:"logins"`
	Errors     int     `json:"errors"`
	PerSecond  float64 `json:"per_second"`
	P50MS      float64 `json:"p50_ms"`
	P99MS      float64 `json:"p99_ms"`
	WritesPer  float64 `json:"etcd_writes_per_login"`
	GatewayCPU float64 `json:"gateway_cpu_us_per_login"` // all gateways, idle rate taken off
	// ObserverCPU: a gateway that did not make the placements, per
	// placement it saw (the watch's fan-out); 1-gateway runs only.
	ObserverCPU float64 `json:"observer_cpu_us_per_placement,omitempty"`
	MemberCPU   float64 `json:"etcd_cpu_us_per_login"` // all members
}

// size is the state at one count of known users.
type size struct {
	Users         int64       `json:"users"`
	GatewayHeap   []uint64    `json:"gateway_heap_bytes"`
	GatewayPSSKiB []int64     `json:"gateway_pss_kib"`
	Members       []memberMem `json:"members"`
	DBSize        int64       `json:"db_size"`
	DBInUse       int64       `json:"db_in_use"`
	DBDefrag      int64       `json:"db_size_defragmented"`
	FreshStartMS  float64     `json:"fresh_gateway_start_ms"`
	FreshHeap     uint64      `json:"fresh_gateway_heap_bytes"`
	FreshPSSKiB   int64       `json:"fresh_gateway_pss_kib"`
	// CompactS and DefragS: how long the compaction and the
	// defragmentation (of every member, one after the other) took.
	CompactS float64 `json:"compact_s"`
	DefragS  float64 `json:"defrag_s"`
	// CompactStallS and DefragStallS: the longest a read or a lease
	// renewal on the first member waited meanwhile (a gateway is fenced
	// when its renewals wait 14 s).
	CompactStallS float64 `json:"compact_stall_s"`
	DefragStallS  float64 `json:"defrag_stall_s"`
	// FencedS: how long a gateway stayed fenced after the compaction
	// and defragmentation (which block the member) before it served
	// again; -1: it did not within two minutes.
	FencedS float64 `json:"fenced_s,omitempty"`
}

// benchStore measures one cluster kind with three gateways on it.
func benchStore(t *runTB, kind, dir string, o storeOptions) storeResult {
	res := storeResult{Cluster: kind}
	c := startCluster(t, kind, dir)
	var gws []*child
	for i := 0; i < 3; i++ {
		g, _ := c.gateway(t, fmt.Sprintf("gw%d", i), i, 15*time.Minute)
		t.Cleanup(g.stop)
		gws = append(gws, g)
	}
	// What the gateways spend doing nothing (lease renewals, load
	// reports), taken off every figure below.
	idle := idleRates(gws, 3*time.Second)

	next := 0 // the next user never placed
	res.Scale = append(res.Scale, measureSize(t, c, gws, 0))
	for _, n := range o.Users {
		if n <= next {
			continue
		}
		// Fill up, the three gateways at once.
		per := (n - next + 2) / 3
		var wg sync.WaitGroup
		t0 := time.Now()
		for i, g := range gws {
			from, cnt := next+i*per, min(per, n-next-i*per)
			if cnt <= 0 {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := g.call(request{Op: "acquire", From: from, N: cnt, Conc: 2 * o.Conc})
				if err != nil || r.Errors > 0 {
					log.Printf("filling: %v %d errors (%s)", err, r.Errors, r.FirstError)
				}
			}()
		}
		wg.Wait()
		log.Printf("%s: placed %d users in %.1f s", kind, n-next, time.Since(t0).Seconds())
		next = n
		time.Sleep(2 * time.Second) // the watches deliver the last ones
		res.Scale = append(res.Scale, measureSize(t, c, gws, n))
	}
	if k, v, err := c.oneAssignment(); err == nil {
		res.AssignmentKey, res.AssignmentValue, res.AssignmentBytes = k, v, len(k)+len(v)
	}

	// New placements: one gateway, then three at once; sticky logins of
	// known users the same way; with the store holding what it holds now.
	for rep := 0; rep < max(o.Reps, 1); rep++ {
		for _, gw := range []int{1, 3} {
			r := runRate(t, c, gws, idle, "new", gw, next, o)
			r.Rep = rep
			res.Rates = append(res.Rates, r)
			next += gw * o.Place
		}
		for _, gw := range []int{1, 3} {
			r := runRate(t, c, gws, idle, "sticky", gw, 0, o)
			r.Rep = rep
			res.Rates = append(res.Rates, r)
		}
	}
	res.RateMedians = medians(res.Rates)
	first, last := res.Scale[0], res.Scale[len(res.Scale)-1]
	if n := float64(last.Users); n > 0 {
		res.GatewayHeapPerUser = (float64(last.GatewayHeap[1]) - float64(first.GatewayHeap[1])) / n
		res.FreshHeapPerUser = (float64(last.FreshHeap) - float64(first.FreshHeap)) / n
		var mh0, mh1, mp0, mp1 float64
		for i := range last.Members {
			mh0 += float64(first.Members[i].HeapAlloc)
			mh1 += float64(last.Members[i].HeapAlloc)
			mp0 += float64(first.Members[i].PSSKiB)
			mp1 += float64(last.Members[i].PSSKiB)
		}
		k := float64(len(last.Members))
		res.MemberHeapPerUser = (mh1 - mh0) / k / n
		res.MemberPSSPerUser = (mp1 - mp0) * 1024 / k / n
		res.DBBytesPer100k = float64(last.DBSize-first.DBSize) / n * 1e5
		res.DBBytesPer100kDefrag = float64(last.DBDefrag-first.DBDefrag) / n * 1e5
	}
	return res
}

// idleRates measures each gateway's CPU time per second while nothing
// happens.
func idleRates(gws []*child, d time.Duration) []float64 {
	before := cpus(gws)
	time.Sleep(d)
	after := cpus(gws)
	out := make([]float64, len(gws))
	for i := range gws {
		out[i] = float64(after[i]-before[i]) / d.Seconds()
	}
	return out
}

func cpus(gws []*child) []time.Duration {
	out := make([]time.Duration, len(gws))
	for i, g := range gws {
		r, _ := g.call(request{Op: "cpu"})
		out[i] = time.Duration(r.CPUNS)
	}
	return out
}

// runRate runs logins of o.Place users on n gateways at once: new users
// from next on (each gateway its own), or users every gateway knows.
func runRate(t *runTB, c *cluster, gws []*child, idle []float64, kind string, n, next int, o storeOptions) rate {
	rev0, err := c.revision()
	if err != nil {
		t.Fatal(err)
	}
	cpu0, m0, t0 := cpus(gws), c.memberCPU(), time.Now()
	replies := make([]reply, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		from := next + i*o.Place
		if kind == "sticky" {
			from = 0
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r, err := gws[i].call(request{Op: "acquire", From: from, N: o.Place, Conc: o.Conc})
			if err != nil {
				t.Error(err)
			}
			replies[i] = r
		}(i)
	}
	wg.Wait()
	// The watches deliver the last placements, the refreshes are
	// batched: give both time before the counters are read.
	time.Sleep(2 * time.Second)
	elapsed := time.Since(t0)
	cpu1, m1 := cpus(gws), c.memberCPU()
	rev1, err := c.revision()
	if err != nil {
		t.Fatal(err)
	}
	r := rate{Case: kind, Gateways: n, Conc: o.Conc}
	var slowest float64
	for _, rp := range replies {
		r.Logins += rp.Done
		r.Errors += rp.Errors
		slowest = max(slowest, rp.Seconds)
		r.P50MS = max(r.P50MS, rp.P50MS)
		r.P99MS = max(r.P99MS, rp.P99MS)
		if rp.FirstError != "" {
			log.Printf("%s: %d errors, first: %s", kind, rp.Errors, rp.FirstError)
		}
	}
	total := float64(n * o.Place)
	r.PerSecond = float64(r.Logins) / slowest
	r.WritesPer = float64(rev1-rev0) / total
	var gcpu float64
	for i := range gws {
		// Less than the idle rate is that rate's own variance: none.
		busy := max(float64(cpu1[i]-cpu0[i])-idle[i]*elapsed.Seconds(), 0)
		gcpu += busy
		if n == 1 && i > 0 {
			r.ObserverCPU += busy / 1e3 / total / float64(len(gws)-1)
		}
	}
	r.GatewayCPU = gcpu / 1e3 / total
	r.MemberCPU = float64(m1-m0) / 1e3 / total
	log.Printf("%s %s, %d gateway(s): %.0f/s, p99 %.1f ms, %.2f writes each", c.kind, kind, n, r.PerSecond, r.P99MS, r.WritesPer)
	return r
}

// measureSize measures the gateways, the members and the database with n
// users known, and how long a fresh gateway takes to load them.
func measureSize(t *runTB, c *cluster, gws []*child, n int) size {
	s := size{Users: int64(n)}
	if got, err := c.users(); err == nil {
		s.Users = got
	}
	for _, g := range gws {
		r, _ := g.call(request{Op: "mem"})
		s.GatewayHeap = append(s.GatewayHeap, r.HeapAlloc)
		s.GatewayPSSKiB = append(s.GatewayPSSKiB, r.PSSKiB)
	}
	s.Members = c.memberMem()
	var err error
	if s.DBSize, s.DBInUse, err = c.dbSize(); err != nil {
		t.Fatal(err)
	}
	comp, defrag, cst, dst, err := c.compactDefrag()
	if err != nil {
		t.Fatal(err)
	}
	s.CompactS, s.DefragS = comp.Seconds(), defrag.Seconds()
	s.CompactStallS = max(cst.Read, cst.Renewal).Seconds()
	s.DefragStallS = max(dst.Read, dst.Renewal).Seconds()
	if s.DBDefrag, _, err = c.dbSize(); err != nil {
		t.Fatal(err)
	}
	s.FencedS = waitUnfenced(t, c.kind, gws)
	fresh, r := c.gateway(t, "fresh", 1, 15*time.Minute)
	s.FreshStartMS = r.StartMS
	m, _ := fresh.call(request{Op: "mem"})
	s.FreshHeap, s.FreshPSSKiB = m.HeapAlloc, m.PSSKiB
	fresh.stop()
	if f := waitUnfenced(t, c.kind, gws); f < 0 || s.FencedS < 0 {
		s.FencedS = -1
	} else {
		s.FencedS += f
	}
	if s.FencedS < 0 || s.FencedS > 1 {
		log.Printf("%s with %d users: gateways fenced for %.0f s (-1: more than two minutes)", c.kind, s.Users, s.FencedS)
	}
	log.Printf("%s with %d users: gateway heap %.1f MiB, fresh gateway loaded in %.0f ms, db %.1f MiB (%.1f MiB defragmented)",
		c.kind, s.Users, float64(s.GatewayHeap[1])/(1<<20), s.FreshStartMS, float64(s.DBSize)/(1<<20), float64(s.DBDefrag)/(1<<20))
	return s
}

// rateMedian is one case over its runs.
type rateMedian struct {
	rate
	Runs int     `json:"runs"`
	Min  float64 `json:"min_per_second"`
	Max  float64 `json:"max_per_second"`
}

// medians picks, per case and gateway count, the run with the median rate.
func medians(rs []rate) []rateMedian {
	var out []rateMedian
	seen := map[string]bool{}
	for _, r := range rs {
		k := fmt.Sprintf("%s/%d", r.Case, r.Gateways)
		if seen[k] {
			continue
		}
		seen[k] = true
		var runs []rate
		for _, x := range rs {
			if x.Case == r.Case && x.Gateways == r.Gateways {
				runs = append(runs, x)
			}
		}
		sort.Slice(runs, func(i, j int) bool { return runs[i].PerSecond < runs[j].PerSecond })
		out = append(out, rateMedian{rate: runs[len(runs)/2], Runs: len(runs), Min: runs[0].PerSecond, Max: runs[len(runs)-1].PerSecond})
	}
	return out
}

// waitUnfenced waits until no gateway is fenced, for up to two minutes,
// and returns how long that took (-1: too long).
func waitUnfenced(t *runTB, kind string, gws []*child) float64 {
	t0 := time.Now()
	for {
		fenced := 0
		for _, g := range gws {
			if r, err := g.call(request{Op: "fenced"}); err != nil || r.Fenced {
				fenced++
			}
		}
		if fenced == 0 {
			return time.Since(t0).Seconds()
		}
		if time.Since(t0) > 2*time.Minute {
			t.Errorf("%s: %d gateways still fenced after two minutes", kind, fenced)
			return -1
		}
		time.Sleep(500 * time.Millisecond)
	}
}
