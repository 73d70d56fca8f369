// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/maildirector/maildirector/admin"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// AnvilSession is one entry of a backend's anvil connection table: the
// sessions of one user, over one service, from one IP, in one process.
// Mail processes (imap, pop3, managesieve, lmtp) register every session
// with anvil once the user is logged in, and unregister it when it ends;
// that table is what `doveadm who` prints and what
// mail_max_userip_connections counts.
type AnvilSession struct {
	User    string
	Service string // imap, pop3, sieve, lmtp ...
	IP      string // the client's IP as the backend sees it; empty for lmtp
	PID     int
	Count   int // sessions in that process (imap processes serve many)
}

// AnvilPath is the backend's anvil socket (base_dir/anvil).
func (d *Dovecot) AnvilPath() string { return filepath.Join(d.Opts.Dir, "run", "anvil") }

// AnvilSessions asks the backend's anvil for its connection table, as
// `doveadm who` does (CONNECT-DUMP on base_dir/anvil), without starting a
// process: a sample costs well under a millisecond.
func (d *Dovecot) AnvilSessions(ctx context.Context) ([]AnvilSession, error) {
	var dl net.Dialer
	c, err := dl.DialContext(ctx, "unix", d.AnvilPath())
	if err != nil {
		return nil, fmt.Errorf("anvil: %w", err)
	}
	defer c.Close()
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	c.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write([]byte("VERSION\tanvil\t1\t0\nCONNECT-DUMP\n")); err != nil {
		return nil, fmt.Errorf("anvil: %w", err)
	}
	var out []AnvilSession
	sc := bufio.NewScanner(c)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			return out, nil // end of the dump
		}
		s, err := parseAnvilDump(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("anvil: %w", err)
	}
	return nil, errors.New("anvil: connection closed before the end of the dump")
}

// parseAnvilDump parses one CONNECT-DUMP line: ident, pid, refcount and
// more fields, tab-separated, where ident is service/ip/user (imap, pop3)
// or service/user (lmtp), tab-escaped.
func parseAnvilDump(line string) (AnvilSession, error) {
	f := strings.Split(line, "\t")
	if len(f) < 3 {
		return AnvilSession{}, fmt.Errorf("anvil: invalid CONNECT-DUMP line %q", line)
	}
	ident := admin.TabUnescape(f[0])
	pid, err1 := strconv.Atoi(f[1])
	count, err2 := strconv.Atoi(f[2])
	service, rest, ok := strings.Cut(ident, "/")
	if !ok || err1 != nil || err2 != nil {
		return AnvilSession{}, fmt.Errorf("anvil: invalid CONNECT-DUMP line %q", line)
	}
	s := AnvilSession{Service: service, PID: pid, Count: count, User: rest}
	// doveadm's rule: a second slash separates the IP from the user.
	if ip, user, ok := strings.Cut(rest, "/"); ok {
		s.IP, s.User = ip, user
	}
	return s, nil
}

// Sessions returns, for every user with a session on this backend now, how
// many sessions it has (all services), from anvil's table (AnvilSessions).
// Sampling two backends and finding a user in both is finding a user whose
// sessions are split. A session appears once the backend has logged the
// user in and goes once its process has seen the connection end.
func (d *Dovecot) Sessions(ctx context.Context) (map[string]int, error) {
	entries, err := d.AnvilSessions(ctx)
	if err != nil {
		return nil, err
	}
	m := map[string]int{}
	for _, e := range entries {
		if e.Count > 0 {
			m[e.User] += e.Count
		}
	}
	return m, nil
}

// SessionsDoveadm is Sessions by way of `doveadm -c <config> who -1`
// (one line per session), which finds the private instance's anvil through
// base_dir in its configuration. It starts a doveadm process per call
// (tens of milliseconds): Sessions is the one to sample with.
func (d *Dovecot) SessionsDoveadm(ctx context.Context) (map[string]int, error) {
	out, err := exec.CommandContext(ctx, "doveadm", "-c", d.Conf, "who", "-1").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, fmt.Errorf("doveadm who: %v: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("doveadm who: %w", err)
	}
	m := map[string]int{}
	for i, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 3 { // header: username proto pid ip
			continue
		}
		m[f[0]]++
	}
	return m, nil
}
