// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
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
// under the low mark included; once it is over the mark is back at 1, the
// directions rest in the poller, and a command of a few bytes still wakes
// the relay, both ways.
func TestRelayBulkThenCommand(t *testing.T) {
	user, gwClient := tcpPair(t)
	gwBackend, server := tcpPair(t)
	cc := &ClientConn{conn: gwClient, R: bufio.NewReader(gwClient), W: bufio.NewWriter(gwClient)}
	var reg Registry
	s := &Session{User: "u"}
	StartRelay(cc, NewBackendConn(gwBackend), s, &reg, func(int64, int64) {})
	defer s.relay.close()

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
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); {
			if time.Now().After(deadline) {
				t.Fatalf("waited 10 s for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// Dovecot's pattern: 8 KiB and a short piece, many times over, and a
	// tail shorter than the low mark. More than the sockets on the way
	// hold: while the client does not read, the relay stays in the flow,
	// blocked writing, with the mark raised.
	msg := randomBytes(t, 32<<20+1000)
	go func() {
		for rest, i := msg, 0; len(rest) > 0; i++ {
			n := min(len(rest), 8192)
			if i%2 == 1 && len(rest) > 8192 {
				n = 104
			}
			if _, err := server.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	}()
	waitFor("the low mark to go up", func() bool { return lowat() == bulkLowat })
	got := make([]byte, len(msg))
	user.SetReadDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.ReadFull(user, got); err != nil {
		t.Fatalf("client got %d bytes: %v", len(got), err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("client got other bytes than the backend sent")
	}
	waitFor("the low mark to come down", func() bool { return lowat() == 1 })
	waitFor("both directions to rest in the poller", func() bool {
		return s.relay.dirs[0].state.Load() == dirArmed && s.relay.dirs[1].state.Load() == dirArmed
	})
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

// TestRelayUrgentDataThenEnd: at TCP's urgent mark splice moves nothing,
// and when the sender's FIN follows the mark it reports the end of the
// stream; the bytes between the mark and the FIN must still go through.
func TestRelayUrgentDataThenEnd(t *testing.T) {
	user, gwClient := tcpPair(t)
	gwBackend, server := tcpPair(t)
	go relayConns(gwClient, gwBackend)

	sendOOB(t, user, "abc", "!", "def")
	if err := user.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(server)
	if err != nil || string(got) != "abcdef" {
		t.Fatalf("backend got %q, %v; want abcdef, then the end", got, err)
	}
}
