// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendOOB writes before, then urgent as TCP urgent data, then after.
func sendOOB(t *testing.T, c net.Conn, before, urgent, after string) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Write(func(fd uintptr) bool {
		if serr = unix.Send(int(fd), []byte(before), 0); serr == nil {
			if serr = unix.Send(int(fd), []byte(urgent), unix.MSG_OOB); serr == nil {
				serr = unix.Send(int(fd), []byte(after), 0)
			}
		}
		return true
	})
	if serr != nil {
		t.Fatal(serr)
	}
}

// pollerOpen reports whether p's epoll set is open.
// lingerNow runs the unused set's close without waiting for its timer.
func lingerNow(p *poller) { p.closeUnused() }

func pollerOpen(p *poller) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.file != nil
}

// TestRelayBulkThenCommand: a flow large enough to go bulk (the backend
// socket's SO_RCVLOWAT raised, see pace) arrives whole, its last bytes
// under the low mark included, and once it is over the mark is back at 1:
// a command of a few bytes afterwards still wakes the relay, both ways.
func TestRelayBulkThenCommand(t *testing.T) {
	user, gwClient := tcpPair(t)
	gwBackend, server := tcpPair(t)
	go relayConns(gwClient, gwBackend)

	// Dovecot's pattern: 8 KiB and a short piece, many times over, and a
	// tail shorter than the low mark.
	msg := randomBytes(t, 3<<20+1000)
	go func() {
		for rest := msg; len(rest) > 0; {
			n := min(len(rest), 8192)
			if len(rest) > 8192+104 && len(rest)%3 == 0 {
				n = 104
			}
			if _, err := server.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	}()
	got := make([]byte, len(msg))
	user.SetReadDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(user, got); err != nil {
		t.Fatalf("client got %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("client got other bytes than the backend sent")
	}
	// The flow ends: the relay goes back to waking for every byte.
	lowat := func() int {
		rc, err := gwBackend.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		var gerr error
		rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVLOWAT) })
		if gerr != nil {
			t.Fatal(gerr)
		}
		return v
	}
	deadline := time.Now().Add(10 * time.Second)
	for lowat() != 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if v := lowat(); v != 1 {
		t.Fatalf("SO_RCVLOWAT after the flow is %d, want 1", v)
	}
	time.Sleep(2 * hotWait) // resting in the poller
	for _, c := range []struct {
		from, to net.Conn
		what     string
	}{{server, user, "* 1 EXISTS\r\n"}, {user, server, "a NOOP\r\n"}} {
		if _, err := c.from.Write([]byte(c.what)); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, len(c.what))
		c.to.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(c.to, b); err != nil || string(b) != c.what {
			t.Fatalf("after the flow: %q, %v", b, err)
		}
	}
}
