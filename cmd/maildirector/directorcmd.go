// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/passdb"
)

// cmdDirectorHosts runs the director commands that read or change the
// cluster store: status, add, update, up, down, remove, flush. They act
// cluster-wide; down, remove and flush return once every gateway has
// ended the moved users' sessions.
func cmdDirectorHosts(verb string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("director "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("c", "/etc/maildirector/maildirector.yaml", "configuration file")
	asJSON := fs.Bool("json", false, "print JSON (status)")
	tag := fs.String("t", "", "backend group (add)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long to wait for a move (or, with drain, for the host to empty) to finish")
	kickAfter := fs.Duration("kick-after", 0, "drain: move the remaining users away after this long (0: only wait)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	want := map[string][2]int{"status": {0, 0}, "add": {1, 2}, "update": {2, 2}, "up": {1, 1}, "down": {1, 1}, "remove": {1, 1}, "flush": {1, 1},
		"drain": {1, 1}, "undrain": {1, 1}, "kick": {1, 1}, "move": {2, 2}, "tag": {2, 2}}[verb]
	if fs.NArg() < want[0] || fs.NArg() > want[1] {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cfg, err := config.Load(*conf)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitUsage
	}
	log := newLogger(config.Log{Level: "warn", Format: cfg.Log.Format}, os.Stderr)
	st, err := openStore(cfg, log, false)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	defer st.Close()
	budget := *timeout
	if verb == "drain" {
		// The drain's own --timeout ends it with 75; the context only
		// bounds the store calls around it.
		budget += time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), budget)
	defer cancel()
	seed, _ := director.ParseHosts(cfg.Director.Backends)
	if err := st.store.Start(ctx, seed, "maildirector director "+verb); err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	by := whoAsks()
	s := st.store
	arg := fs.Arg(0)
	switch verb {
	case "status":
		return directorStatus(ctx, s, cfg, *asJSON, stdout, stderr)
	case "add":
		vhosts := director.DefaultVHosts
		if fs.NArg() == 2 {
			if vhosts, err = strconv.Atoi(fs.Arg(1)); err != nil {
				fmt.Fprintln(stderr, "maildirector: the vhost count must be a number")
				return exitUsage
			}
		}
		ip, t, _ := strings.Cut(arg, "@")
		if t == "" {
			t = *tag
		}
		hosts, perr := director.ParseHosts([]string{ip + "@" + t + " " + strconv.Itoa(vhosts)})
		if perr != nil {
			fmt.Fprintf(stderr, "maildirector: %v\n", perr)
			return exitUsage
		}
		for _, h := range hosts {
			if err = director.AddHost(ctx, s, h, by); err != nil {
				break
			}
		}
	case "update":
		n, perr := strconv.Atoi(fs.Arg(1))
		if perr != nil {
			fmt.Fprintln(stderr, "maildirector: the vhost count must be a number")
			return exitUsage
		}
		err = director.SetVHosts(ctx, s, arg, n, by)
	case "kick", "move":
		d, derr := director.New(director.Config{UsernameHash: cfg.Director.UsernameHash, UserExpire: cfg.Director.UserExpire, Store: memory.New()})
		if derr != nil {
			fmt.Fprintf(stderr, "maildirector: %v\n", derr)
			return exitUsage
		}
		// The name a login of this user is known by (auth.default_realm,
		// auth.username_format), then its store key.
		chain := &passdb.Chain{DefaultRealm: cfg.Auth.DefaultRealm, UsernameFormat: cfg.Auth.UsernameFormat}
		name, _, uerr := chain.Username(arg)
		if uerr != nil {
			fmt.Fprintf(stderr, "maildirector: %v\n", uerr)
			return exitUsage
		}
		key, kerr := d.StoreKey(name, *tag)
		if kerr != nil {
			fmt.Fprintf(stderr, "maildirector: %v\n", kerr)
			return exitUsage
		}
		if verb == "kick" {
			err = director.Kick(ctx, s, key, by)
		} else {
			err = director.MoveUser(ctx, s, key, fs.Arg(1), d.UserExpire(), by)
		}
	case "drain":
		progress := func(p director.DrainProgress) {
			if *asJSON {
				json.NewEncoder(stdout).Encode(p)
				return
			}
			fmt.Fprintf(stdout, "%s drained %s: %d sessions, %d deliveries in flight, %d users assigned (%d gateways)%s\n",
				p.Host, p.Elapsed.Round(time.Second), p.Sessions, p.Deliveries, p.Users, p.Gateways,
				map[bool]string{true: "; remaining users moved", false: ""}[p.Kicked])
		}
		err = director.Drain(ctx, s, arg, director.DrainOptions{KickAfter: *kickAfter, Timeout: *timeout, Progress: progress}, by)
		if errors.Is(err, director.ErrDrainTimeout) {
			fmt.Fprintf(stderr, "maildirector: %v\n", err)
			return exitTempFail
		}
		if err == nil {
			if !*asJSON {
				fmt.Fprintf(stdout, "%s is empty; it stays drained until \"maildirector director undrain %s\"\n", arg, arg)
			}
			return 0
		}
	case "undrain":
		err = director.Undrain(ctx, s, arg, by)
	case "tag":
		err = director.SetTag(ctx, s, arg, fs.Arg(1), by)
	case "up":
		err = director.HostUp(ctx, s, arg, by)
	case "down":
		err = director.HostDown(ctx, s, arg, by)
	case "remove":
		err = director.RemoveHost(ctx, s, arg, by)
	case "flush":
		if arg == "all" {
			hosts, herr := s.Hosts(ctx)
			if herr != nil {
				err = herr
				break
			}
			for _, h := range hosts {
				if err = director.Flush(ctx, s, h.IP, by); err != nil {
					break
				}
			}
		} else {
			err = director.Flush(ctx, s, arg, by)
		}
	}
	switch {
	case errors.Is(err, director.ErrNotFound), errors.Is(err, director.ErrLastHost):
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitTempFail
	}
	fmt.Fprintln(stdout, "OK")
	return 0
}

// whoAsks names the operator for the store's records.
func whoAsks() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "cli:" + name + "@" + host
}

type hostStatus struct {
	director.HostRecord
	Users    int            `json:"users"`
	Sessions map[string]int `json:"sessions"` // by gateway name: sessions and deliveries
}

func directorStatus(ctx context.Context, s director.Store, cfg *config.Config, asJSON bool, stdout, stderr io.Writer) int {
	hosts, err := s.Hosts(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	users := map[string]int{}
	now := time.Now()
	if err := s.Range(ctx, func(_ string, a director.Assignment) bool {
		if a.Expires.After(now) {
			users[a.Backend]++
		}
		return true
	}); err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	out := make([]hostStatus, len(hosts))
	for i, h := range hosts {
		out[i] = hostStatus{HostRecord: h, Users: users[h.IP]}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP < out[j].IP })
	gateways, err := s.Gateways(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	for i := range out {
		out[i].Sessions = map[string]int{}
		for _, g := range gateways {
			if n := g.Sessions[out[i].IP] + g.Deliveries[out[i].IP]; n > 0 {
				out[i].Sessions[g.Name] = n
			}
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{"hosts": out, "gateways": gateways})
		return 0
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "backend\ttag\tvhosts\tstate\tchanged\tby\tusers\tsessions")
	for _, h := range out {
		state := "up"
		switch {
		case h.Down:
			state = "down (" + h.DownBy + ")"
		case h.Drained:
			state = fmt.Sprintf("drained (was %d)", h.DrainedFrom)
		}
		var per []string
		for g, n := range h.Sessions {
			per = append(per, fmt.Sprintf("%s:%d", g, n))
		}
		sort.Strings(per)
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", h.IP, h.Tag, h.VHosts, state, h.ChangedAt.Local().Format(time.DateTime), h.ChangedBy, h.Users, strings.Join(per, " "))
	}
	w.Flush()
	for _, h := range out {
		for _, e := range h.Health {
			fmt.Fprintf(stdout, "health: %s %s %s %s\n", h.IP, e.At.Local().Format(time.DateTime), map[bool]string{true: "up", false: "down"}[e.Up], e.Reason)
		}
	}
	for _, d := range director.HostDiff(mustHosts(cfg), hosts) {
		fmt.Fprintf(stdout, "note: %s\n", d)
	}
	return 0
}

func mustHosts(cfg *config.Config) []director.Host {
	h, _ := director.ParseHosts(cfg.Director.Backends)
	return h
}
