// SPDX-License-Identifier: Apache-2.0

// Command scalebench measures how maildirector scales past one box, with
// synthetic users against a real etcd (the member serve embeds, alone
// and three peered, and Debian's etcd 3.4): the bytes one assignment
// costs in the store, each gateway's memory per known user and whether it
// follows the active users after assignments expire, new placements per
// second the cluster sustains, how long a fresh gateway takes to load its
// view, the watch's fan-out cost on the gateways that did not make a
// placement; and relayed IMAP sessions through one `maildirector serve`
// to real Dovecot backends, with the per-session cost extrapolated to
// 100,000 sessions.
//
//	go run ./integration/scalebench [-cases store,expiry,sessions] [-json]
//
// Every figure comes from the store code the gateway runs (director,
// etcdstore, embedded), in processes of their own: the program runs its
// gateways and members as children of itself (-role).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) > 2 && os.Args[1] == "-role" {
		switch os.Args[2] {
		case "gateway":
			runGateway(os.Args[3:])
		case "member":
			runMember(os.Args[3:])
		default:
			fatalChild(fmt.Errorf("unknown role %q", os.Args[2]))
		}
		return
	}
	cases := flag.String("cases", "store,expiry,sessions", "what to measure: store, expiry, sessions")
	clusters := flag.String("clusters", "embedded1,embedded3", "store cluster kinds: embedded1, embedded3, etcd1, etcd3 (Debian's etcd 3.4)")
	place := flag.Int("place", 3000, "new users each gateway places in a rate run")
	conc := flag.Int("conc", 32, "logins in flight per gateway")
	reps := flag.Int("reps", 3, "runs of each rate case (the median is shown)")
	users := flag.String("users", "10000,100000", "known-user counts to measure memory, load time and db size at")
	expiryUsers := flag.Int("expiry-users", 50000, "users placed per wave in the expiry run")
	expiryWaves := flag.Int("expiry-waves", 2, "waves of users in the expiry run (each waits up to a minute for the sweeper)")
	sessions := flag.String("sessions", "1000,3000,6000,9000", "relayed IMAP session counts to measure the gateway at")
	sessionStore := flag.String("session-store", "memory", "the session gateway's director store: memory or embedded")
	jsonOut := flag.Bool("json", false, "print the results as JSON")
	keep := flag.Bool("keep", false, "keep the working directory (logs)")
	print := flag.String("print", "", "print the tables of an earlier run's -json output instead of measuring")
	flag.Parse()
	if *print != "" {
		b, err := os.ReadFile(*print)
		if err != nil {
			log.Fatal(err)
		}
		var res results
		if err := json.Unmarshal(b, &res); err != nil {
			log.Fatal(err)
		}
		printResults(os.Stdout, res)
		return
	}
	log.SetFlags(log.Ltime)
	log.SetPrefix("scalebench: ")

	dir, err := os.MkdirTemp("", "scalebench")
	if err != nil {
		log.Fatal(err)
	}
	// Dovecot's auth and mail processes run as other users and must
	// reach their files under it.
	os.Chmod(dir, 0o755)
	t := newRunTB(dir)
	res := results{Started: time.Now().UTC(), Args: os.Args[1:]}
	if bi, ok := debug.ReadBuildInfo(); ok {
		res.GoVersion = bi.GoVersion
	}
	ok := run(t, func() {
		for _, c := range strings.Split(*cases, ",") {
			switch strings.TrimSpace(c) {
			case "store":
				for _, k := range strings.Split(*clusters, ",") {
					k = strings.TrimSpace(k)
					sub := dir + "/" + k
					os.MkdirAll(sub, 0o755)
					res.Store = append(res.Store, benchStore(t, k, sub, storeOptions{Place: *place, Conc: *conc, Reps: *reps, Users: ints(*users)}))
				}
			case "expiry":
				sub := dir + "/expiry"
				os.MkdirAll(sub, 0o755)
				r := benchExpiry(t, sub, *expiryUsers, *expiryWaves, *conc)
				res.Expiry = &r
			case "sessions":
				sub := dir + "/sessions"
				os.MkdirAll(sub, 0o755)
				r := benchSessions(t, sub, ints(*sessions), *sessionStore)
				res.Sessions = &r
			case "":
			default:
				t.Fatalf("unknown case %q", c)
			}
		}
	})
	res.Seconds = time.Since(res.Started).Seconds()
	if *jsonOut {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(res)
	} else {
		printResults(os.Stdout, res)
	}
	if *keep || !ok {
		log.Printf("logs kept in %s", dir)
	} else {
		os.RemoveAll(dir)
	}
	if !ok {
		os.Exit(1)
	}
}

// run runs f, turning the harness's Fatal into a false result, and
// cleans up after it.
func run(t *runTB, f func()) (ok bool) {
	defer t.cleanup()
	defer func() {
		if r := recover(); r != nil {
			a, isAbort := r.(abort)
			if !isAbort {
				panic(r)
			}
			if a.skip {
				log.Printf("skipped: %s", a.msg)
			} else {
				log.Printf("failed: %s", a.msg)
			}
			ok = false
		}
	}()
	f()
	return !t.Failed()
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			log.Fatalf("not a number: %q", f)
		}
		out = append(out, n)
	}
	return out
}

// results is everything one run measured.
type results struct {
	Started   time.Time       `json:"started"`
	Seconds   float64         `json:"seconds"`
	Args      []string        `json:"args"`
	GoVersion string          `json:"go_version"`
	Store     []storeResult   `json:"store,omitempty"`
	Expiry    *expiryResult   `json:"expiry,omitempty"`
	Sessions  *sessionsResult `json:"sessions,omitempty"`
}
