// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/maildirector/maildirector/admin"
	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/passdb"
)

// diffRow is one user (or, from USER-LIST, one hash) placed differently.
type diffRow struct {
	User         string   `json:"user,omitempty"`
	Hash         string   `json:"hash"`
	Dovecot      string   `json:"dovecot"`
	DovecotHow   string   `json:"dovecot_how"` // assigned or hashed
	Maildirector string   `json:"maildirector"`
	HowHere      string   `json:"maildirector_how"` // assigned or hashed
	Why          []string `json:"why"`
}

type diffReport struct {
	HostDifferences []string  `json:"host_differences,omitempty"`
	Compared        int       `json:"compared"`
	Differences     []diffRow `json:"differences"`
}

// cmdDirectorDiff compares a live Dovecot 2.3 Director's placements with
// maildirector's: maildirector director diff --dovecot SOCKET [USERS|-].
// A site runs it before the switch-over and sees zero differences, or
// knows each one and why.
func cmdDirectorDiff(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("director diff", flag.ContinueOnError)
	fs.SetOutput(stderr)
	conf := fs.String("c", "/etc/maildirector/maildirector.yaml", "configuration file")
	sock := fs.String("dovecot", "", "the Dovecot Director's director-admin socket (e.g. /var/run/dovecot/director-admin)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil || *sock == "" || fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: maildirector director diff [-c FILE] [--json] --dovecot SOCKET [USERS-FILE|-]")
		return exitUsage
	}
	cfg, err := config.Load(*conf)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitUsage
	}
	var users []string
	if fs.NArg() == 1 {
		in := os.Stdin
		if name := fs.Arg(0); name != "-" {
			if in, err = os.Open(name); err != nil {
				fmt.Fprintf(stderr, "maildirector: %v\n", err)
				return exitUsage
			}
			defer in.Close()
		}
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			if u := strings.TrimSpace(sc.Text()); u != "" && !strings.HasPrefix(u, "#") {
				users = append(users, u)
			}
		}
		if err := sc.Err(); err != nil {
			fmt.Fprintf(stderr, "maildirector: %v\n", err)
			return exitUsage
		}
	}
	// A site's whole user list goes through one connection: give it
	// time (a lookup is a few microseconds; a million users a minute or
	// two).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dc, err := admin.DialDirector(ctx, *sock)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: Dovecot Director: %v\n", err)
		return exitTempFail
	}
	defer dc.Close()
	theirHosts, err := dc.HostList()
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: Dovecot Director: %v\n", err)
		return exitTempFail
	}
	st, err := openStore(cfg, newLogger(config.Log{Level: "error", Format: "text"}, os.Stderr), false)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	defer st.Close()
	ourHosts, err := st.store.Hosts(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	// The live assignments here, by store key and by hash.
	now := time.Now()
	assigned := map[string]director.Assignment{}
	byHash := map[uint32]director.Assignment{}
	if err := st.store.Range(ctx, func(key string, a director.Assignment) bool {
		if a.Expires.After(now) {
			assigned[key] = a
			_, name, _ := strings.Cut(key, "/")
			byHash[director.UserHash(name)] = a
		}
		return true
	}); err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	d, err := diffDirector(cfg, theirHosts, ourHosts)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitUsage
	}
	rep := diffReport{HostDifferences: d.hostDiff}
	if users != nil {
		for _, u := range users {
			their, err := dc.UserLookup(u, "")
			if err != nil {
				fmt.Fprintf(stderr, "maildirector: Dovecot Director: %v\n", err)
				return exitTempFail
			}
			rep.Compared++
			if row, differs := d.user(u, their, assigned); differs {
				rep.Differences = append(rep.Differences, row)
			}
		}
	} else {
		// Without names, the Director's live assignments, by hash: the
		// users a switch-over would move while they are active.
		list, err := dc.UserList()
		if err != nil {
			fmt.Fprintf(stderr, "maildirector: Dovecot Director: %v\n", err)
			return exitTempFail
		}
		for _, a := range list {
			rep.Compared++
			if row, differs := d.hash(a, byHash); differs {
				rep.Differences = append(rep.Differences, row)
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		for _, h := range rep.HostDifferences {
			fmt.Fprintf(stdout, "backends: %s\n", h)
		}
		for _, r := range rep.Differences {
			name := r.User
			if name == "" {
				name = "hash " + r.Hash
			}
			fmt.Fprintf(stdout, "%s: Dovecot %s (%s), maildirector %s (%s): %s\n", name, r.Dovecot, r.DovecotHow, r.Maildirector, r.HowHere, strings.Join(r.Why, "; "))
		}
		what := "users"
		if users == nil {
			what = "assignments of the Director (USER-LIST)"
		}
		fmt.Fprintf(stdout, "%d %s compared, %d placed differently, %d backend differences\n", rep.Compared, what, len(rep.Differences), len(rep.HostDifferences))
	}
	if len(rep.Differences) > 0 || len(rep.HostDifferences) > 0 {
		return 1
	}
	return 0
}

// directorDiff holds what comparing needs: both sides' rings, and how
// maildirector names and hashes users.
type directorDiff struct {
	ours, theirs *director.Ring // default backend group
	chain        *passdb.Chain
	dir          *director.Director
	hostDiff     []string
}

func diffDirector(cfg *config.Config, theirHosts []admin.DirectorHost, ourHosts []director.HostRecord) (*directorDiff, error) {
	dir, err := director.New(director.Config{UsernameHash: cfg.Director.UsernameHash, Store: memory.New()})
	if err != nil {
		return nil, err
	}
	d := &directorDiff{
		dir:   dir,
		chain: &passdb.Chain{DefaultRealm: cfg.Auth.DefaultRealm, UsernameFormat: cfg.Auth.UsernameFormat},
	}
	if cfg.Auth.UsernameChars != nil {
		d.chain.UsernameChars = *cfg.Auth.UsernameChars
	}
	theirs := map[string]admin.DirectorHost{}
	var theirRing, ourRing []director.Host
	for _, h := range theirHosts {
		theirs[h.IP] = h
		if h.Tag == "" {
			theirRing = append(theirRing, director.Host{IP: h.IP, VHosts: h.VHosts, Down: h.Down})
		}
	}
	ours := map[string]director.HostRecord{}
	for _, h := range ourHosts {
		ours[h.IP] = h
		if h.Tag == "" {
			ourRing = append(ourRing, h.Host)
		}
	}
	d.theirs, d.ours = director.NewRing(theirRing), director.NewRing(ourRing)
	for _, h := range theirHosts {
		o, ok := ours[h.IP]
		switch {
		case !ok:
			d.hostDiff = append(d.hostDiff, fmt.Sprintf("%s is in the Director (vhosts %d), not in maildirector's store (maildirector director add %s %d)", h.IP, h.VHosts, h.IP, h.VHosts))
			continue
		case o.VHosts != h.VHosts:
			d.hostDiff = append(d.hostDiff, fmt.Sprintf("%s has vhosts %d in the Director, %d here (maildirector director update %s %d)", h.IP, h.VHosts, o.VHosts, h.IP, h.VHosts))
		}
		if o.Down != h.Down {
			d.hostDiff = append(d.hostDiff, fmt.Sprintf("%s is %s in the Director, %s here", h.IP, upDown(h.Down), upDown(o.Down)))
		}
		if o.Tag != h.Tag {
			d.hostDiff = append(d.hostDiff, fmt.Sprintf("%s has tag %q in the Director, %q here", h.IP, h.Tag, o.Tag))
		}
	}
	for _, h := range ourHosts {
		if _, ok := theirs[h.IP]; !ok {
			d.hostDiff = append(d.hostDiff, fmt.Sprintf("%s is in maildirector's store (vhosts %d), not in the Director", h.IP, h.VHosts))
		}
	}
	sort.Strings(d.hostDiff)
	return d, nil
}

func upDown(down bool) string {
	if down {
		return "down"
	}
	return "up"
}

// user compares one named user: the Director's answer (their) with
// maildirector's (a live assignment here, else its ring).
func (d *directorDiff) user(name string, their admin.DirectorUser, assigned map[string]director.Assignment) (diffRow, bool) {
	row := diffRow{User: name, Dovecot: their.Hashed, DovecotHow: "hashed"}
	if their.Current != "" {
		row.Dovecot, row.DovecotHow = their.Current, "assigned"
	}
	fixed, ok, err := d.chain.Username(name)
	if err != nil || !ok {
		row.Why = append(row.Why, "maildirector refuses this name (auth.username_chars, auth.username_format)")
		return row, true
	}
	key, err := d.dir.HashKey(fixed)
	if err != nil {
		row.Why = append(row.Why, fmt.Sprintf("director.username_hash cannot be expanded for it: %v", err))
		return row, true
	}
	h := director.UserHash(key)
	row.Hash = fmt.Sprintf("%08x", h)
	ringHere, _ := d.ours.Lookup(h)
	row.Maildirector, row.HowHere = ringHere, "hashed"
	if a, ok := assigned["/"+key]; ok {
		row.Maildirector, row.HowHere = a.Backend, "assigned"
	}
	if row.Maildirector == row.Dovecot {
		return row, false
	}
	if fixed != name {
		row.Why = append(row.Why, fmt.Sprintf("maildirector names the user %q (auth.default_realm, auth.username_format)", fixed))
	}
	ringThere, _ := d.theirs.Lookup(h)
	if their.Hashed != "" && ringThere != their.Hashed {
		row.Why = append(row.Why, fmt.Sprintf("the Director hashes the name differently (director_username_hash, its realm); maildirector hashes %q", key))
	}
	if ringHere != ringThere {
		row.Why = append(row.Why, "the backends differ (see the backends lines)")
	}
	row.Why = append(row.Why, d.stickiness(row, their.Expires, ringHere)...)
	return row, true
}

// hash compares one of the Director's live assignments, known by hash.
func (d *directorDiff) hash(a admin.DirectorAssignment, byHash map[uint32]director.Assignment) (diffRow, bool) {
	row := diffRow{Hash: fmt.Sprintf("%08x", a.Hash), Dovecot: a.Host, DovecotHow: "assigned"}
	ringHere, _ := d.ours.Lookup(a.Hash)
	row.Maildirector, row.HowHere = ringHere, "hashed"
	if ours, ok := byHash[a.Hash]; ok {
		row.Maildirector, row.HowHere = ours.Backend, "assigned"
	}
	if row.Maildirector == row.Dovecot {
		return row, false
	}
	if ringThere, _ := d.theirs.Lookup(a.Hash); ringHere != ringThere {
		row.Why = append(row.Why, "the backends differ (see the backends lines)")
	}
	row.Why = append(row.Why, d.stickiness(row, time.Time{}, ringHere)...)
	return row, true
}

// stickiness explains a difference that comes from an assignment on one
// side only.
func (d *directorDiff) stickiness(row diffRow, until time.Time, ringHere string) []string {
	var why []string
	if row.DovecotHow == "assigned" && row.HowHere == "hashed" {
		s := "the Director has the user assigned"
		if !until.IsZero() {
			s += " until " + until.Local().Format(time.DateTime)
		}
		why = append(why, s+fmt.Sprintf("; maildirector has no assignment and its ring says %s: the user moves at the switch-over unless idle by then (or: maildirector director move)", ringHere))
	}
	if row.HowHere == "assigned" {
		why = append(why, "maildirector has the user assigned (sticky) here")
	}
	if len(why) == 0 && row.DovecotHow == "hashed" && row.HowHere == "hashed" {
		why = append(why, "the rings disagree")
	}
	return why
}
