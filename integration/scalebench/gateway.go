// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/etcdstore"
)

// backends are the ring's hosts in the store benchmarks: the store and
// the director never dial them.
var backends = []string{"127.0.0.11", "127.0.0.12"}

// userName is the i-th synthetic user: 20 bytes, like a short address.
func userName(i int) string { return fmt.Sprintf("u%07d@example.com", i) }

// runGateway is -role gateway: a director on an etcdstore, as serve
// builds them, minus the listeners. Its orders: acquire (logins: Acquire,
// and Release unless held), release (end every held lease).
func runGateway(args []string) {
	fs := flag.NewFlagSet("gateway", flag.ExitOnError)
	endpoints := fs.String("endpoints", "", "etcd client endpoints, comma-separated")
	name := fs.String("name", "gw", "gateway name")
	expire := fs.Duration("user-expire", director.DefaultUserExpire, "director.user_expire")
	fs.Parse(args)

	// The store's own log (joins, fencing, failed loads) goes to the
	// child's log file.
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	s, err := etcdstore.New(etcdstore.Config{
		Endpoints:  strings.Split(*endpoints, ","),
		UserExpire: *expire,
		Name:       *name,
		Logger:     log,
	})
	if err != nil {
		fatalChild(err)
	}
	hosts, err := director.ParseHosts(backends)
	if err != nil {
		fatalChild(err)
	}
	d, err := director.New(director.Config{Hosts: hosts, UserExpire: *expire, Store: s, Logger: log})
	if err != nil {
		fatalChild(err)
	}
	ctx := context.Background()
	t0 := time.Now()
	if err := d.Start(ctx, *name); err != nil {
		fatalChild(err)
	}
	startMS := float64(time.Since(t0).Microseconds()) / 1000
	go d.Run(ctx)

	var mu sync.Mutex
	var held []*director.Lease
	serveChild(reply{StartMS: startMS, Fenced: d.IsFenced()}, func(req request) reply {
		switch req.Op {
		case "acquire":
			r, leases := acquire(ctx, d, req)
			mu.Lock()
			held = append(held, leases...)
			mu.Unlock()
			return r
		case "release":
			mu.Lock()
			n := len(held)
			for _, l := range held {
				l.Release()
			}
			held = nil
			mu.Unlock()
			return reply{Done: n}
		case "fenced":
			return reply{Fenced: d.IsFenced()}
		}
		return reply{Err: "unknown order " + req.Op}
	})
	s.Close()
}

// acquire logs users From..From+N in through the director, Conc at a
// time, as a login does: Acquire, then Release when the session ends
// (at once here, unless req.Hold).
func acquire(ctx context.Context, d *director.Director, req request) (reply, []*director.Lease) {
	conc := max(req.Conc, 1)
	var next, errs atomic.Int64
	var mu sync.Mutex
	var first string
	var held []*director.Lease
	lat := make([][]time.Duration, conc)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= req.N {
					return
				}
				s := time.Now()
				l, err := d.Acquire(ctx, userName(req.From+i), "")
				lat[w] = append(lat[w], time.Since(s))
				if err != nil {
					if errs.Add(1) == 1 {
						mu.Lock()
						first = err.Error()
						mu.Unlock()
					}
					continue
				}
				if req.Hold {
					mu.Lock()
					held = append(held, l)
					mu.Unlock()
				} else {
					l.Release()
				}
			}
		}(w)
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	r := reply{Done: req.N - int(errs.Load()), Errors: int(errs.Load()), FirstError: first, Seconds: secs}
	if len(all) > 0 {
		r.P50MS = float64(all[len(all)/2].Microseconds()) / 1000
		r.P99MS = float64(all[len(all)*99/100].Microseconds()) / 1000
	}
	return r, held
}
