// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// bigSize is the FETCH and APPEND message's size: 10 MB.
const bigSize = 10_000_000

// bigMessage returns a message of exactly bigSize bytes: headers, then
// lines of 78 printable characters.
func bigMessage() []byte {
	var b bytes.Buffer
	b.Grow(bigSize)
	b.WriteString("From: bench@example.com\r\nTo: fetch@example.com\r\nSubject: 10 MB\r\nMessage-ID: <big@bench.example.com>\r\n\r\n")
	line := make([]byte, 80)
	for i := 0; b.Len() < bigSize; i++ {
		for j := 0; j < 78; j++ {
			line[j] = byte('!' + (i+j)%94)
		}
		line[78], line[79] = '\r', '\n'
		b.Write(line[:min(80, bigSize-b.Len())])
	}
	msg := b.Bytes()
	copy(msg[bigSize-2:], "\r\n")
	return msg
}

// prepareFetch gives the fetch user its one 10 MB message, straight on its
// backend, unless it has it already.
func (e *env) prepareFetch() error {
	if e.big == nil {
		e.big = bigMessage()
	}
	c, err := imapSession(e.addr(e.targets[0], "imap", e.fetchUser), 0, false, e.fetchUser)
	if err != nil {
		return err
	}
	defer c.close()
	if err := c.send("s STATUS INBOX (MESSAGES)"); err != nil {
		return err
	}
	have := false
	for {
		l, err := c.line()
		if err != nil {
			return err
		}
		if strings.HasPrefix(l, "* STATUS") && strings.Contains(l, "MESSAGES 1)") {
			have = true
		}
		if strings.HasPrefix(l, "s ") {
			break
		}
	}
	if have {
		return nil
	}
	return c.appendBig(e.big)
}

// appendBig APPENDs msg with a non-synchronizing literal (LITERAL+, which
// Dovecot offers): one write, one reply.
func (c *conn) appendBig(msg []byte) error {
	c.extend()
	if _, err := fmt.Fprintf(c.c, "p APPEND INBOX {%d+}\r\n", len(msg)); err != nil {
		return err
	}
	if _, err := c.c.Write(msg); err != nil {
		return err
	}
	if err := c.send(""); err != nil { // the command line's end
		return err
	}
	st, err := c.untilTagged("p")
	if err != nil {
		return fmt.Errorf("APPEND: %w", err)
	}
	if !strings.HasPrefix(st, "OK") {
		return fmt.Errorf("APPEND: %q", st)
	}
	return nil
}

// fetchBig fetches message 1 and returns its size; the literal is read
// and dropped.
func (c *conn) fetchBig() (int64, error) {
	c.extend()
	if err := c.send("f FETCH 1 BODY.PEEK[]"); err != nil {
		return 0, err
	}
	var n int64
	for {
		l, err := c.line()
		if err != nil {
			return 0, err
		}
		if strings.HasPrefix(l, "f ") {
			if !strings.HasPrefix(l, "f OK") {
				return 0, fmt.Errorf("FETCH: %q", l)
			}
			return n, nil
		}
		if i := strings.LastIndexByte(l, '{'); i >= 0 && strings.HasSuffix(l, "}") {
			size, err := strconv.ParseInt(l[i+1:len(l)-1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("FETCH literal: %q", l)
			}
			if _, err := io.CopyN(io.Discard, c.r, size); err != nil {
				return 0, err
			}
			n += size
		}
	}
}

// transferRun measures one client's FETCH (or APPEND) of the 10 MB message
// in a loop on one logged-in session, in MB/s.
func (e *env) transferRun(t *target, useTLS, appending bool) obs {
	proto, user := "imap", e.fetchUser
	if useTLS {
		proto = "imaps"
	}
	if appending {
		user = e.appendUser
	}
	var c *conn
	var bytesDone atomic.Int64
	clock := cpuClock{e, t}
	var cpu [2][3]float64
	edges := 0
	window, o := timedRun{
		clients: 1, warmup: e.o.warmup, duration: e.o.duration,
		op: func(i int, n int64, phase *atomic.Int32, o *obs) {
			if c == nil {
				var err error
				if c, err = imapSession(e.addr(t, proto, user), 0, useTLS, user); err != nil {
					o.fail(err)
					time.Sleep(100 * time.Millisecond)
					return
				}
			}
			var size int64
			var err error
			if appending {
				size, err = int64(len(e.big)), c.appendBig(e.big)
			} else {
				size, err = c.fetchBig()
				if err == nil && size != bigSize {
					err = fmt.Errorf("FETCH gave %d bytes, want %d", size, bigSize)
				}
			}
			if err != nil {
				o.fail(err)
				c.close()
				c = nil
				return
			}
			if phase.Load() == counting {
				bytesDone.Add(size)
			}
		},
		edge: func() {
			p, b, c := clock.read()
			cpu[edges] = [3]float64{p, b, c}
			edges++
		},
	}.run()
	if c != nil {
		if appending {
			// Outside the window: the appended copies go, so that the disk
			// does not fill over the repetitions.
			c.extend()
			if err := c.imapCmd("x", `STORE 1:* +FLAGS.SILENT (\Deleted)`); err == nil {
				if err := c.imapCmd("y", "EXPUNGE"); err != nil {
					o.fail(err)
				}
			}
		}
		c.close()
	}
	mb := float64(bytesDone.Load()) / 1e6
	o.values = map[string]float64{"mbps": mb / window.Seconds()}
	if mb > 0 {
		if t.pids != nil {
			o.values["proxy_cpu"] = (cpu[1][0] - cpu[0][0]) / mb
		}
		o.values["backend_cpu"] = (cpu[1][1] - cpu[0][1]) / mb
		o.values["client_cpu"] = (cpu[1][2] - cpu[0][2]) / mb
	}
	return o
}

// lmtpReply reads one (possibly multi-line) SMTP/LMTP reply and wants
// its code to start with want.
func (c *conn) lmtpReply(what string, want byte) error {
	for {
		l, err := c.line()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if len(l) >= 4 && l[3] == '-' {
			continue
		}
		if len(l) < 3 || l[0] != want {
			return fmt.Errorf("%s: %q", what, l)
		}
		return nil
	}
}

// lmtpBody is the LMTP case's message (2 KB), dot-stuffed and
// terminated.
var lmtpBody = "From: bench@example.com\r\nTo: you@example.com\r\nSubject: LMTP bench\r\n\r\n" +
	strings.Repeat("A line of a small message, as most mail is small enough.\r\n", 32) + ".\r\n"

// deliver sends one message to rcpts over one LMTP connection and wants
// each recipient's 250 (RFC 2033: a reply per recipient after DATA).
func deliver(addr string, src int, rcpts []string) error {
	c, err := dial(addr, src, false)
	if err != nil {
		return err
	}
	defer c.close()
	steps := []struct {
		line string
		want byte
	}{{"", '2'}, {"LHLO bench.example.com", '2'}, {"MAIL FROM:<bench@example.com>", '2'}}
	for _, r := range rcpts {
		steps = append(steps, struct {
			line string
			want byte
		}{"RCPT TO:<" + r + ">", '2'})
	}
	steps = append(steps, struct {
		line string
		want byte
	}{"DATA", '3'})
	for _, s := range steps {
		if s.line != "" {
			if err := c.send(s.line); err != nil {
				return err
			}
		}
		what := s.line
		if what == "" {
			what = "greeting"
		}
		if err := c.lmtpReply(what, s.want); err != nil {
			return err
		}
	}
	if _, err := io.WriteString(c.c, lmtpBody); err != nil {
		return err
	}
	for _, r := range rcpts {
		if err := c.lmtpReply("DATA for "+r, '2'); err != nil {
			return err
		}
	}
	c.send("QUIT")
	return c.lmtpReply("QUIT", '2')
}

// lmtpRun measures messages/s by 8 clients, each message to two
// recipients, one on each backend, a connection per message. Straight to
// the backends, a message is two deliveries, one per backend.
func (e *env) lmtpRun(t *target) obs {
	const clients = 8
	first, second := e.byBackend[backendIPs[0]], e.byBackend[backendIPs[1]]
	counted := make([]int, clients)
	clock := cpuClock{e, t}
	var cpu [2][3]float64
	edges := 0
	window, o := timedRun{
		clients: clients, warmup: e.o.warmup, duration: e.o.duration,
		op: func(i int, n int64, phase *atomic.Int32, o *obs) {
			rcpts := []string{first[int(n)%len(first)], second[int(n)%len(second)]}
			var err error
			if t.addrs == nil {
				for _, r := range rcpts {
					if err = deliver(e.addr(t, "lmtp", r), int(n), []string{r}); err != nil {
						break
					}
				}
			} else {
				err = deliver(t.addrs["lmtp"], int(n), rcpts)
			}
			if err != nil {
				o.fail(err)
				return
			}
			if phase.Load() == counting {
				counted[i]++
			}
		},
		edge: func() {
			p, b, c := clock.read()
			cpu[edges] = [3]float64{p, b, c}
			edges++
		},
	}.run()
	n := 0
	for _, c := range counted {
		n += c
	}
	o.values = map[string]float64{"rate": float64(n) / window.Seconds()}
	if n > 0 {
		if t.pids != nil {
			o.values["proxy_cpu"] = (cpu[1][0] - cpu[0][0]) / float64(n)
		}
		o.values["backend_cpu"] = (cpu[1][1] - cpu[0][1]) / float64(n)
	}
	return o
}

// idleRun restarts t's proxy, opens e.o.sessions logged-in IMAP sessions
// with INBOX selected through it and reports its memory (PSS, summed over
// its processes) and file descriptors per session.
func (e *env) idleRun(t *target, useTLS bool) obs {
	proto := "imap"
	if useTLS {
		proto = "imaps"
	}
	var o obs
	if err := t.restart(); err != nil {
		o.fail(fmt.Errorf("restart: %w", err))
		return o
	}
	// Warm up: one-time allocations (pools, TLS state, the login path's
	// first use) are not a session's.
	for i := 0; i < 32; i++ {
		u := e.users[i%len(e.users)]
		c, err := imapSession(t.addrs[proto], i, useTLS, u)
		if err != nil {
			o.fail(fmt.Errorf("warm-up: %w", err))
			continue
		}
		c.imapCmd("z", "LOGOUT")
		c.close()
	}
	time.Sleep(500 * time.Millisecond)
	pss0, err0 := harness.PSSKiB(t.pids()...)
	fds0, err1 := harness.FDCount(t.pids()...)
	if err0 != nil || err1 != nil {
		o.skipped = fmt.Sprintf("reading /proc: %v %v", err0, err1)
		return o
	}
	sessions := make([]*conn, e.o.sessions)
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(sessions) {
					return
				}
				u := e.users[i%len(e.users)]
				c, err := imapSession(t.addrs[proto], i, useTLS, u)
				if err != nil {
					mu.Lock()
					o.fail(fmt.Errorf("session %d (%s): %w", i, u, err))
					mu.Unlock()
					continue
				}
				sessions[i] = c
			}
		}()
	}
	wg.Wait()
	time.Sleep(time.Second) // what the sessions' setup left behind settles
	pss1, err0 := harness.PSSKiB(t.pids()...)
	fds1, err1 := harness.FDCount(t.pids()...)
	open := 0
	for i, c := range sessions {
		if c == nil {
			continue
		}
		open++
		// The sessions still work after sitting idle.
		if i%50 == 0 {
			c.extend()
			if err := c.imapCmd("n", "NOOP"); err != nil {
				o.fail(fmt.Errorf("NOOP after idling: %w", err))
			}
		}
	}
	for _, c := range sessions {
		if c != nil {
			c.close()
		}
	}
	if err0 != nil || err1 != nil {
		o.skipped = fmt.Sprintf("reading /proc: %v %v", err0, err1)
		return o
	}
	if open > 0 {
		o.values = map[string]float64{
			"pss":  float64(pss1-pss0) / float64(open),
			"fds":  float64(fds1-fds0) / float64(open),
			"open": float64(open),
		}
	}
	// The next measurement starts when this one's sessions are gone.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if n, err := harness.FDCount(t.pids()...); err != nil || n <= fds0+8 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// and with backends as they were before it: the thousand mail
	// processes its sessions left would each wake for every later
	// connection (they all wait on the service's one socket), which cut
	// the login rates that followed to a fifth.
	if err := e.restartBackends(); err != nil {
		o.fail(fmt.Errorf("restarting the backends after the idle sessions: %w", err))
	}
	return o
}

// restartBackends stops each backend and starts it again on the same
// configuration, ports and mail.
func (e *env) restartBackends() error {
	for i, b := range e.backends {
		b.Stop()
		n, err := harness.StartDovecot(b.Opts)
		if err != nil {
			return err
		}
		e.backends[i] = n
	}
	return nil
}

// hostPort splits an ip:port address's port off.
func hostPort(addr string) int {
	_, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return n
}
