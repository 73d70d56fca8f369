// SPDX-License-Identifier: Apache-2.0

// Command loadbench measures what a proxy in front of Dovecot costs, side
// by side in one run on one machine: the same two private Dovecot 2.3
// backends reached straight ("direct"), through maildirector, and, where
// installed, through Dovecot 2.3's own Director in proxy mode and nginx's
// mail proxy. Each case runs against every target, interleaved, several
// times; the tables show medians and ratios. scripts/bench runs it.
//
//	go run ./integration/loadbench [--cases login,lmtp] [--reps 3] [--duration 3s] [--json]
//
// Everything runs as private child processes on loopback addresses, and
// every request loop is bounded in time. A failed operation is counted and
// reported, never counted as done; any makes the exit status 1.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// options are the command line.
type options struct {
	reps               int
	duration, warmup   time.Duration
	cases              []string
	json               bool
	sessions, newUsers int
	peers              map[string]bool
	dir                string
	keep               bool
	// rows, when set, keeps only the rows whose label matches (a profile
	// of one measurement, e.g. --rows 'FETCH.*plain').
	rows *regexp.Regexp
}

func (o *options) has(c string) bool {
	for _, n := range o.cases {
		if n == c {
			return true
		}
	}
	return false
}

func (o *options) peer(p string) bool { return o.peers[p] }

func parseFlags(args []string) (*options, error) {
	fs := flag.NewFlagSet("loadbench", flag.ContinueOnError)
	o := &options{}
	cases := fs.String("cases", "all", "cases to run, comma-separated: "+strings.Join(caseNames, ","))
	peers := fs.String("peers", dovecotDir+","+nginx, "peers to compare with, where installed (empty: none)")
	fs.IntVar(&o.reps, "reps", 3, "repetitions of every measurement (the tables show medians)")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of each measurement")
	fs.DurationVar(&o.warmup, "warmup", 500*time.Millisecond, "load before each measurement that is not counted")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of tables")
	fs.IntVar(&o.sessions, "sessions", 1000, "idle sessions per target in the idle case")
	fs.IntVar(&o.newUsers, "new-users", 0, "users that have never logged in, for the cluster case's new-user logins (0: enough for 2,000 logins/s)")
	fs.StringVar(&o.dir, "dir", "", "working directory (default: a new one under /tmp, removed after a clean run)")
	fs.BoolVar(&o.keep, "keep", false, "keep the working directory (configurations and logs)")
	rows := fs.String("rows", "", "only the rows whose label matches this regular expression (e.g. 'FETCH.*plain')")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: loadbench [flags]\n\nCases: login (logins/s per protocol, 1 and 32 clients), latency (IMAP login percentiles),\ncpu (CPU per login: proxy, backends, load generator), lmtp, fetch (FETCH/APPEND of 10 MB,\nplain and TLS), idle (memory and fds per idle session), cluster (director stores).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var err error
	if *rows != "" {
		if o.rows, err = regexp.Compile(*rows); err != nil {
			return nil, fmt.Errorf("--rows: %w", err)
		}
	}
	if o.cases, err = parseCases(*cases); err != nil {
		return nil, err
	}
	if o.reps < 1 || o.duration <= 0 || o.warmup < 0 || o.sessions < 1 {
		return nil, fmt.Errorf("--reps, --duration and --sessions must be positive")
	}
	o.peers = map[string]bool{}
	for _, p := range strings.Split(*peers, ",") {
		switch p = strings.TrimSpace(p); p {
		case "":
		case dovecotDir, nginx:
			o.peers[p] = true
		default:
			return nil, fmt.Errorf("unknown peer %q (peers: %s, %s)", p, dovecotDir, nginx)
		}
	}
	if o.newUsers == 0 {
		o.newUsers = o.reps * int((o.duration+o.warmup+time.Second).Seconds()*2000)
	}
	return o, nil
}

// logf writes a progress line to standard error.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func toolInstalled(name string) bool {
	_, err := exec.LookPath(name)
	return err == nil
}

func main() { os.Exit(run()) }

func run() int {
	o, err := parseFlags(os.Args[1:])
	if err == flag.ErrHelp {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		return 2
	}
	if o.dir == "" {
		// Short: Dovecot's UNIX socket paths must fit in 108 bytes.
		if o.dir, err = os.MkdirTemp("/tmp", "mdbench-"); err != nil {
			fmt.Fprintln(os.Stderr, "loadbench:", err)
			return 1
		}
	} else if err := os.MkdirAll(o.dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		return 1
	}
	// Dovecot's unprivileged processes read their configuration under it.
	os.Chmod(o.dir, 0o755)
	r := &report{Started: time.Now(), Reps: o.reps, Duration: o.duration.String(), Warmup: o.warmup.String(), Sessions: o.sessions}
	logf("working directory %s", o.dir)
	e, err := setup(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadbench: setup:", err)
		fmt.Fprintln(os.Stderr, "loadbench: logs kept in", o.dir)
		return 1
	}
	// Ctrl-C: the children go with us (they also have Pdeathsig).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		logf("interrupted: stopping the servers; logs kept in %s", o.dir)
		e.stop()
		os.Exit(130)
	}()
	r.Machine = machine()
	r.Machine["load average at start"] = loadavg()
	r.Skipped = e.skipped
	for p, why := range e.skipped {
		logf("%s: not measured: %s", p, why)
	}
	cases := e.cases()
	for _, name := range o.cases {
		c := cases[name]
		if o.rows != nil {
			c.rows = slices.DeleteFunc(c.rows, func(r row) bool { return !o.rows.MatchString(r.label) })
			if len(c.rows) == 0 {
				continue
			}
		}
		targets := e.targets
		if c.prepare != nil {
			if err := c.prepare(); err != nil {
				logf("[%s] not run: %v", name, err)
				r.Cases = append(r.Cases, caseReport{Name: name, Title: c.title, Error: err.Error()})
				if c.finish != nil {
					c.finish()
				}
				continue
			}
		}
		if c.targets != nil {
			targets = c.targets()
		}
		e.runCase(c, targets)
		if c.finish != nil {
			c.finish()
		}
		r.Cases = append(r.Cases, e.caseReport(c, targets))
	}
	r.Machine["load average at end"] = loadavg()
	e.stop()
	e.failures(r)
	if o.json {
		r.writeJSON(os.Stdout)
	} else {
		r.writeTables(os.Stdout)
	}
	if r.Failures > 0 || o.keep {
		logf("logs kept in %s", o.dir)
	} else {
		os.RemoveAll(o.dir)
	}
	if r.Failures > 0 {
		return 1
	}
	return 0
}

// runCase runs every measurement of c against every target, reps times;
// within a repetition the targets take turns, starting one further along
// each time, so that none always runs first (or right after another).
func (e *env) runCase(c *benchCase, targets []*target) {
	var ms []*measurement
	seen := map[*measurement]bool{}
	for _, r := range c.rows {
		if !seen[r.m] {
			seen[r.m] = true
			ms = append(ms, r.m)
		}
	}
	for rep := 0; rep < e.o.reps; rep++ {
		for _, m := range ms {
			for k := range targets {
				t := targets[(k+rep)%len(targets)]
				if e.memo[m.key] == nil {
					e.memo[m.key] = map[string][]obs{}
				}
				if len(e.memo[m.key][t.name]) > rep {
					continue // another case's rows measured it already
				}
				var r obs
				if why := m.cannot(t); why != "" {
					r = obs{skipped: why}
				} else {
					r = m.run(t)
				}
				e.memo[m.key][t.name] = append(e.memo[m.key][t.name], r)
				logf("[%s] %d/%d %s, %s: %s", c.name, rep+1, e.o.reps, m.key, t.name, summary(r))
			}
		}
	}
}

// summary is a progress line's account of one measurement.
func summary(r obs) string {
	if r.skipped != "" {
		return "skipped: " + r.skipped
	}
	var parts []string
	for _, k := range []string{"rate", "login_p99", "proxy_cpu", "mbps", "pss", "fds"} {
		if v, ok := r.values[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %s", k, num(v)))
		}
	}
	if r.failures > 0 {
		parts = append(parts, fmt.Sprintf("%d FAILED (%s)", r.failures, strings.Join(r.errs, " | ")))
	}
	return strings.Join(parts, ", ")
}

// loadavg is /proc/loadavg's 1, 5 and 15 minute figures: other work on
// the machine shows there.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// machine describes where the run happened.
func machine() map[string]string {
	m := map[string]string{
		"cores": fmt.Sprint(runtime.NumCPU()),
		"go":    runtime.Version(),
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m["kernel"] = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("dovecot", "--version").Output(); err == nil {
		m["dovecot"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("nginx", "-v").CombinedOutput(); err == nil {
		m["nginx"] = strings.TrimPrefix(strings.TrimSpace(string(out)), "nginx version: ")
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m["maildirector"] = strings.TrimSpace(string(out))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]); len(f) >= 2 {
			m["memory"] = f[1] + " kB"
		}
	}
	return m
}
