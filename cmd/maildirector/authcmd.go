// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/internal/authbuild"
)

// Exit statuses of the lookup tools, so that scripts can tell a refusal
// from an outage (sysexits.h values where one fits).
const (
	exitOK       = 0
	exitFailed   = 1  // the databases answered no
	exitUsage    = 2  // bad arguments or configuration
	exitInternal = 70 // EX_SOFTWARE: configuration or bug
	exitTempFail = 75 // EX_TEMPFAIL: a database could not answer
)

// toolFlags are the flags every lookup tool takes.
type toolFlags struct {
	fs     *flag.FlagSet
	conf   *string
	json   *bool
	master *string
	info   multiFlag
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func newToolFlags(name string, stderr io.Writer) *toolFlags {
	f := &toolFlags{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.conf = f.fs.String("c", "/etc/maildirector/maildirector.yaml", "configuration file")
	f.json = f.fs.Bool("json", false, "print JSON")
	f.master = f.fs.String("M", "", "log in as USER with this master user's password")
	f.fs.Var(&f.info, "x", "request detail key=value: service, rip, rport, lip, lport, mech, session, secured (repeatable)")
	return f
}

// request builds the auth.Request from -x key=value pairs (doveadm's -x).
func (f *toolFlags) request(user string) (*auth.Request, error) {
	req := &auth.Request{Service: "imap", User: user, Session: "auth-tool"}
	var rip, lip netip.Addr
	var rport, lport uint16
	for _, kv := range f.info {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "service":
			req.Service = v
		case "rip", "lip":
			a, err := netip.ParseAddr(v)
			if err != nil {
				return nil, fmt.Errorf("-x %s: %w", k, err)
			}
			if k == "rip" {
				rip = a
			} else {
				lip = a
			}
		case "rport", "lport":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil {
				return nil, fmt.Errorf("-x %s: %w", k, err)
			}
			if k == "rport" {
				rport = uint16(n)
			} else {
				lport = uint16(n)
			}
		case "mech":
			req.Mech = strings.ToUpper(v)
		case "session":
			req.Session = v
		case "secured":
			req.Secured = v == "" || v == "yes" || v == "1"
		default:
			return nil, fmt.Errorf("-x %s: unknown (service, rip, rport, lip, lport, mech, session, secured)", k)
		}
	}
	req.Remote, req.Local = netip.AddrPortFrom(rip, rport), netip.AddrPortFrom(lip, lport)
	if *f.master != "" {
		req.AuthzID, req.User = user, *f.master
	}
	return req, nil
}

// load reads the configuration and builds the chains, quietly.
func (f *toolFlags) load(stderr io.Writer) (*config.Config, *authbuild.DBs, bool) {
	cfg, err := config.Load(*f.conf)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return nil, nil, false
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	dbs, err := authbuild.Build(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return nil, nil, false
	}
	return cfg, dbs, true
}

// outcome is what a tool prints.
type outcome struct {
	Command string            `json:"command"`
	User    string            `json:"user"`
	Result  string            `json:"result"` // ok, failed, tempfail, internal
	Status  string            `json:"status,omitempty"`
	Master  string            `json:"master,omitempty"`
	Fields  map[string]string `json:"fields,omitempty"`
	Error   string            `json:"error,omitempty"`
	// director map
	Backend string `json:"backend,omitempty"`
	Reason  string `json:"reason,omitempty"`
	HashKey string `json:"hash_key,omitempty"`
	Hash    string `json:"hash,omitempty"`
	Note    string `json:"note,omitempty"`
	// Sessions says which gateways serve the user now (director map).
	Sessions string `json:"sessions,omitempty"`
}

// newOutcome describes a chain's answer. user is the name the chain makes
// of the one given (auth.default_realm, auth.username_format): the tools
// print the name the gateway would log, hash and look up, never the raw
// argument; the answer's own User (a passdb may rewrite it) wins.
func newOutcome(cmd, user string, res auth.Result, err error) outcome {
	o := outcome{Command: cmd, User: user}
	if err == nil && res.User != "" {
		o.User = res.User
	}
	switch {
	case err != nil && auth.KindOf(err) == auth.KindInternal:
		o.Result, o.Error = "internal", err.Error()
	case err != nil:
		o.Result, o.Error = "tempfail", err.Error()
	case res.Status == auth.StatusOK:
		o.Result, o.Fields, o.Master = "ok", map[string]string(res.Fields), res.Master
	default:
		o.Result, o.Status = "failed", res.Status.String()
	}
	return o
}

func (o outcome) exitCode() int {
	switch o.Result {
	case "ok":
		return exitOK
	case "failed":
		return exitFailed
	case "internal":
		return exitInternal
	}
	return exitTempFail
}

// print writes o as doveadm auth test does (or as JSON) and returns the
// exit status.
func (o outcome) print(w io.Writer, asJSON bool, db string) int {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(o)
		return o.exitCode()
	}
	switch o.Result {
	case "ok":
		if o.Master != "" {
			fmt.Fprintf(w, "%s: %s auth succeeded (as master user %s)\n", db, o.User, o.Master)
		} else if o.Command == "auth test" {
			fmt.Fprintf(w, "%s: %s auth succeeded\n", db, o.User)
		} else {
			fmt.Fprintf(w, "%s: %s found\n", db, o.User)
		}
	case "failed":
		fmt.Fprintf(w, "%s: %s failed: %s\n", db, o.User, o.Status)
	case "tempfail":
		fmt.Fprintf(w, "%s: %s: temporary failure: %s\n", db, o.User, o.Error)
	default:
		fmt.Fprintf(w, "%s: %s: internal failure: %s\n", db, o.User, o.Error)
	}
	if len(o.Fields) > 0 {
		fmt.Fprintln(w, "extra fields:")
		keys := make([]string, 0, len(o.Fields))
		for k := range o.Fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := o.Fields[k]
			if k == "pass" {
				v = "<hidden>"
			}
			fmt.Fprintf(w, "  %s=%s\n", k, v)
		}
	}
	return o.exitCode()
}

func toolContext() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

// cmdAuth runs "auth test USER [PASSWORD]" and "auth lookup USER".
func cmdAuth(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || (args[0] != "test" && args[0] != "lookup") {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	sub := args[0]
	f := newToolFlags("auth "+sub, stderr)
	if err := f.fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	rest := f.fs.Args()
	if len(rest) < 1 || len(rest) > 2 || (sub == "lookup" && len(rest) != 1) {
		fmt.Fprintf(stderr, "usage: maildirector auth %s [-c FILE] [-x key=value]... [-M MASTER] [--json] USER%s\n", sub,
			map[string]string{"test": " [PASSWORD]", "lookup": ""}[sub])
		return exitUsage
	}
	_, dbs, ok := f.load(stderr)
	if !ok {
		return exitUsage
	}
	defer dbs.Close()
	req, err := f.request(rest[0])
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitUsage
	}
	ctx, cancel := toolContext()
	defer cancel()
	var res auth.Result
	if sub == "test" {
		req.Password = ""
		if len(rest) == 2 {
			req.Password = rest[1]
		} else if req.Password, err = readPassword(stdin); err != nil {
			fmt.Fprintf(stderr, "maildirector: %v\n", err)
			return exitUsage
		}
		res, err = dbs.Passdb.Verify(ctx, req)
	} else {
		req.NoPassword = true
		res, err = dbs.Passdb.Lookup(ctx, req)
	}
	return newOutcome("auth "+sub, dbs.Passdb.CanonicalUser(req), res, err).print(stdout, *f.json, "passdb")
}

// cmdUser runs "user lookup USER" against the userdb chain.
func cmdUser(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "lookup" {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	f := newToolFlags("user lookup", stderr)
	if err := f.fs.Parse(args[1:]); err != nil || f.fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: maildirector user lookup [-c FILE] [-x key=value]... [--json] USER")
		return exitUsage
	}
	_, dbs, ok := f.load(stderr)
	if !ok {
		return exitUsage
	}
	defer dbs.Close()
	if len(dbs.Userdb.Entries) == 0 {
		fmt.Fprintln(stderr, "maildirector: no userdb is configured")
		return exitUsage
	}
	req, err := f.request(f.fs.Arg(0))
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitUsage
	}
	req.NoPassword = true
	ctx, cancel := toolContext()
	defer cancel()
	res, err := dbs.Userdb.Lookup(ctx, req)
	name := f.fs.Arg(0)
	if fixed, ok, ferr := dbs.Passdb.Username(name); ferr == nil && ok {
		name = fixed // what Userdb.Lookup looked up
	}
	return newOutcome("user lookup", name, res, err).print(stdout, *f.json, "userdb")
}

// cmdDirector runs "director map USER": which backend the user goes to,
// and why — pinned by the passdb's host field, or the ring's choice.
func cmdDirector(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "map" {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	f := newToolFlags("director map", stderr)
	hashes := f.fs.Bool("hash", false, "with HOST or no argument: print each user's hash too")
	if err := f.fs.Parse(args[1:]); err != nil || f.fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: maildirector director map [-c FILE] [-x key=value]... [--json] USER\n       maildirector director map [-c FILE] [--hash] [--json] [HOST]")
		return exitUsage
	}
	if _, perr := netip.ParseAddr(f.fs.Arg(0)); f.fs.NArg() == 0 || perr == nil {
		return directorUsers(f, *hashes, stdout, stderr)
	}
	cfg, dbs, ok := f.load(stderr)
	if !ok {
		return exitUsage
	}
	defer dbs.Close()
	user := f.fs.Arg(0)
	req, err := f.request(user)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitUsage
	}
	req.NoPassword = true
	ctx, cancel := toolContext()
	defer cancel()
	res, err := dbs.Passdb.Lookup(ctx, req)
	// The ring hashes the name the chain made of the argument
	// (auth.default_realm, auth.username_format), as logins do.
	o := newOutcome("director map", dbs.Passdb.CanonicalUser(req), res, err)
	o.Fields = nil
	if o.Result != "ok" {
		return o.print(stdout, *f.json, "passdb")
	}
	if dest := res.Fields.Get("destuser"); dest != "" {
		o.User = dest
	}
	if host := res.Fields.Get("host"); host != "" {
		o.Backend, o.Reason = host, "pinned (passdb host field)"
		return o.printMap(stdout, *f.json)
	}
	hosts, err := director.ParseHosts(cfg.Director.Backends)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitUsage
	}
	d, err := director.New(director.Config{Hosts: hosts, UsernameHash: cfg.Director.UsernameHash, Store: memory.New()})
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitUsage
	}
	tag := res.Fields.Get("director_tag")
	key, err := d.HashKey(o.User)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitInternal
	}
	o.HashKey, o.Hash = key, fmt.Sprintf("%08x", director.UserHash(key))
	// The store knows the backends (it wins over the file) and the
	// user's live assignment, if any.
	var live *director.Assignment
	var who []director.UserLoad
	if cfg.Director.Store == "memory" {
		o.Note = "store: memory: live assignments are known to the running gateway only; this is the ring of the configured backends"
	} else if st, serr := openStore(cfg, newLogger(config.Log{Level: "error", Format: "text"}, os.Stderr), false); serr != nil {
		o.Note = fmt.Sprintf("%v; this is the ring of the configured backends", serr)
	} else {
		defer st.Close()
		stored, herr := st.store.Hosts(ctx)
		skey, _ := d.StoreKey(o.User, tag)
		a, ok, gerr := st.store.Get(ctx, skey)
		if herr != nil || gerr != nil {
			o.Result, o.Error = "tempfail", fmt.Sprintf("director store: %v", errors.Join(herr, gerr))
			return o.printMap(stdout, *f.json)
		}
		d.HostsChanged(stored)
		if ok && a.Expires.After(time.Now()) {
			live = &a
			who, _ = st.store.Who(ctx, skey)
		}
	}
	ip, found, _ := d.Hashed(o.User, tag)
	switch {
	case live != nil:
		o.Backend, o.Reason = live.Backend, fmt.Sprintf("sticky (assigned until %s)", live.Expires.Local().Format(time.DateTime))
		if found && ip != live.Backend {
			o.Reason += fmt.Sprintf("; the ring would now say %s", ip)
		}
		var per []string
		for _, u := range who {
			if u.Sessions+u.Deliveries > 0 {
				per = append(per, fmt.Sprintf("%s: %d sessions, %d deliveries", u.Gateway, u.Sessions, u.Deliveries))
			}
		}
		if len(per) > 0 {
			o.Sessions = strings.Join(per, "; ")
		} else if who != nil {
			o.Sessions = "none (the assignment outlives the last session by user_expire)"
		}
	case !found:
		o.Result, o.Error = "tempfail", "no usable backend in this group"
	default:
		o.Backend, o.Reason = ip, "hashed (the Director ring)"
	}
	return o.printMap(stdout, *f.json)
}

func (o outcome) printMap(w io.Writer, asJSON bool) int {
	if asJSON {
		return o.print(w, true, "")
	}
	if o.Backend == "" {
		fmt.Fprintf(w, "director: %s: %s\n", o.User, o.Error)
		return o.exitCode()
	}
	fmt.Fprintf(w, "user:     %s\n", o.User)
	if o.HashKey != "" {
		fmt.Fprintf(w, "hash:     %s (of %q)\n", o.Hash, o.HashKey)
	}
	fmt.Fprintf(w, "backend:  %s\nreason:   %s\n", o.Backend, o.Reason)
	if o.Sessions != "" {
		fmt.Fprintf(w, "sessions: %s\n", o.Sessions)
	}
	if o.Note != "" {
		fmt.Fprintf(w, "note:     %s\n", o.Note)
	}
	return o.exitCode()
}

// directorUsers runs "director map [HOST]": the users with a live
// assignment (to HOST), by name — the store keeps names, not only hashes
// as Director did — with their hash on --hash.
func directorUsers(f *toolFlags, hashes bool, stdout, stderr io.Writer) int {
	cfg, err := config.Load(*f.conf)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return exitUsage
	}
	st, err := openStore(cfg, newLogger(config.Log{Level: "error", Format: "text"}, os.Stderr), false)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	defer st.Close()
	ctx, cancel := toolContext()
	defer cancel()
	host := f.fs.Arg(0)
	type row struct {
		User    string    `json:"user"`
		Tag     string    `json:"tag,omitempty"`
		Hash    string    `json:"hash,omitempty"`
		Backend string    `json:"backend"`
		Expires time.Time `json:"expires"`
	}
	var rows []row
	now := time.Now()
	if err := st.store.Range(ctx, func(key string, a director.Assignment) bool {
		if (host == "" || a.Backend == host) && a.Expires.After(now) {
			tag, name, _ := strings.Cut(key, "/")
			r := row{User: name, Tag: tag, Backend: a.Backend, Expires: a.Expires}
			if hashes {
				r.Hash = fmt.Sprintf("%08x", director.UserHash(name))
			}
			rows = append(rows, r)
		}
		return true
	}); err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return exitTempFail
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].User < rows[j].User })
	if *f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rows)
		return 0
	}
	for _, r := range rows {
		name := r.User
		if r.Tag != "" {
			name += " [" + r.Tag + "]"
		}
		if hashes {
			fmt.Fprintf(stdout, "%-40s %s %-15s %s\n", name, r.Hash, r.Backend, r.Expires.Local().Format(time.DateTime))
		} else {
			fmt.Fprintf(stdout, "%-40s %-15s %s\n", name, r.Backend, r.Expires.Local().Format(time.DateTime))
		}
	}
	return 0
}
