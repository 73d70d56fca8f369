// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// obs is what one measurement of one target gave: named values, and how
// many operations failed (a failed login is never counted as done).
type obs struct {
	values   map[string]float64
	failures int
	errs     []string // the first few failures
	// skipped says why the target could not be measured ("" when it was).
	skipped string
}

// maxErrs is how many failure texts a measurement keeps.
const maxErrs = 3

func (o *obs) fail(err error) {
	o.failures++
	if len(o.errs) < maxErrs {
		o.errs = append(o.errs, err.Error())
	}
}

// merge adds another observer's failures (one per client goroutine).
func (o *obs) merge(p *obs) {
	o.failures += p.failures
	for _, e := range p.errs {
		if len(o.errs) < maxErrs {
			o.errs = append(o.errs, e)
		}
	}
}

// measurement is one timed run against one target; the rows of several
// cases may read its values (the 32-client login runs feed the login
// rates, the latencies and the CPU per login), so it runs once per target
// and repetition.
type measurement struct {
	key string
	// cannot says why t cannot be measured ("" when it can).
	cannot func(t *target) string
	run    func(t *target) obs
}

// phases of a timed run: clients work from the start, their work counts
// only between the warm-up and the stop.
const (
	warming int32 = iota
	counting
	stopped
)

// timed runs clients goroutines, each calling op until the run stops, and
// times the counting window: warm-up first, then duration. sample is
// called at the window's edges (CPU counters). op returns whether it
// counted (done within the window) or an error.
type timedRun struct {
	clients          int
	warmup, duration time.Duration
	// op does one operation for client i; n numbers operations over all
	// clients.
	op func(i int, n int64, phase *atomic.Int32, o *obs)
	// edge is called when counting starts and when it stops.
	edge func()
}

// run returns the length of the counting window and the merged failures.
func (r timedRun) run() (time.Duration, obs) {
	var phase atomic.Int32
	var next atomic.Int64
	per := make([]obs, r.clients)
	var wg sync.WaitGroup
	for i := 0; i < r.clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for phase.Load() != stopped {
				r.op(i, next.Add(1), &phase, &per[i])
			}
		}()
	}
	time.Sleep(r.warmup)
	if r.edge != nil {
		r.edge()
	}
	start := time.Now()
	phase.Store(counting)
	time.Sleep(r.duration)
	phase.Store(stopped)
	window := time.Since(start)
	if r.edge != nil {
		r.edge()
	}
	wg.Wait()
	var all obs
	for i := range per {
		all.merge(&per[i])
	}
	return window, all
}

// cpuClock reads the CPU time spent so far by a target's processes, the
// backends' and this program's own, in microseconds.
type cpuClock struct {
	e *env
	t *target
}

func (c cpuClock) read() (proxy, backends, client float64) {
	if c.t.pids != nil {
		proxy = float64(harness.CPUTicks(c.t.pids()...)) * 1e6 / harness.ClockTicks
	}
	for _, b := range c.e.backends {
		backends += float64(harness.CPUTicks(harness.ProcessTree(b.Pid())...)) * 1e6 / harness.ClockTicks
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	client = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
	return
}

// percentile returns the q-quantile (nearest rank) of sorted durations, in
// milliseconds.
func percentile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return float64(sorted[i]) / float64(time.Millisecond)
}

// loginRun measures whole logins (connect, greeting, login, logout, one
// connection each) of proto by clients in parallel; pick gives the n-th
// login's user and address.
func (e *env) loginRun(t *target, proto string, clients int, pick func(n int64) (user, addr string, err error)) obs {
	type lat struct{ login, whole []time.Duration }
	lats := make([]lat, clients)
	counted := make([]int, clients)
	clock := cpuClock{e, t}
	var cpu [2][3]float64
	edges := 0
	window, o := timedRun{
		clients: clients, warmup: e.o.warmup, duration: e.o.duration,
		op: func(i int, n int64, phase *atomic.Int32, o *obs) {
			u, addr, err := pick(n)
			if err != nil {
				o.fail(err)
				time.Sleep(10 * time.Millisecond)
				return
			}
			tm, err := oneLogin(proto, addr, int(n), u)
			if err != nil {
				o.fail(fmt.Errorf("%s %s: %w", proto, u, err))
				return
			}
			if phase.Load() == counting {
				counted[i]++
				lats[i].login = append(lats[i].login, tm.login)
				lats[i].whole = append(lats[i].whole, tm.whole)
			}
		},
		edge: func() {
			p, b, c := clock.read()
			cpu[edges] = [3]float64{p, b, c}
			edges++
		},
	}.run()
	var n int
	var login, whole []time.Duration
	for i := range lats {
		n += counted[i]
		login = append(login, lats[i].login...)
		whole = append(whole, lats[i].whole...)
	}
	sort.Slice(login, func(i, j int) bool { return login[i] < login[j] })
	sort.Slice(whole, func(i, j int) bool { return whole[i] < whole[j] })
	o.values = map[string]float64{
		"rate":      float64(n) / window.Seconds(),
		"login_p50": percentile(login, 0.50), "login_p90": percentile(login, 0.90), "login_p99": percentile(login, 0.99),
		"whole_p50": percentile(whole, 0.50), "whole_p90": percentile(whole, 0.90), "whole_p99": percentile(whole, 0.99),
	}
	if n > 0 {
		if clock.t.pids != nil {
			o.values["proxy_cpu"] = (cpu[1][0] - cpu[0][0]) / float64(n)
		}
		o.values["backend_cpu"] = (cpu[1][1] - cpu[0][1]) / float64(n)
		o.values["client_cpu"] = (cpu[1][2] - cpu[0][2]) / float64(n)
	}
	return o
}
