// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"

	"sync"
	"syscall"
	"testing"
	"time"
)

// echoServer echoes every connection back until the client half-closes,
// then half-closes too.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

func mustDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes msg and reads it back within timeout.
func roundTrip(c net.Conn, msg []byte, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return errors.New("echo differs")
	}
	return nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitFor polls cond for up to 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCutProxyForwardsManyConnectionsBothWays(t *testing.T) {
	p := NewCutProxy(t, echoServer(t))
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = mustDial(t, p.Addr())
	}
	// every connection open at once, each with 20 round trips
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 20; r++ {
				if err := roundTrip(c, []byte(fmt.Sprintf("conn %d round %d\n", i, r)), 10*time.Second); err != nil {
					errs <- fmt.Errorf("conn %d round %d: %v", i, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := p.Active(); got != n {
		t.Errorf("Active() = %d, want %d", got, n)
	}

	// 4 MiB written while reading concurrently, then a half-close: the
	// echo ends with EOF once everything came back.
	c := mustDial(t, p.Addr())
	big := make([]byte, 4<<20)
	rand.Read(big)
	go func() {
		c.Write(big)
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("big echo through a half-close: %d of %d bytes, equal %v, err %v", len(got), len(big), bytes.Equal(got, big), err)
	}

	for _, c := range conns {
		c.Close()
	}
	waitFor(t, "closed connections to leave Active", func() bool { return p.Active() == 0 })
}

func TestCutProxyCutDropsAndBlackholes(t *testing.T) {
	p := NewCutProxy(t, echoServer(t))
	old := mustDial(t, p.Addr())
	if err := roundTrip(old, []byte("before\n"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	// the open connection is closed: EOF (or a reset), not a timeout
	old.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := old.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read on a cut connection: %v, want EOF or reset", err)
	}
	// a new connection is accepted, but nothing comes back: a timeout
	held := mustDial(t, p.Addr())
	if err := roundTrip(held, []byte("held\n"), 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("round trip while cut: %v, want a timeout", err)
	}
	waitFor(t, "the held connection", func() bool { return p.Held() == 1 })
	if p.Active() != 0 {
		t.Errorf("Active() = %d while cut", p.Active())
	}
	p.Restore()
	// the held connection is forwarded now, with what it sent meanwhile
	held.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len("held\n"))
	if _, err := io.ReadFull(held, got); err != nil || string(got) != "held\n" {
		t.Fatalf("held connection after Restore: %q, %v", got, err)
	}
	if err := roundTrip(held, []byte("more\n"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(mustDial(t, p.Addr()), []byte("after\n"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestCutProxyStallPausesAndResumes(t *testing.T) {
	p := NewCutProxy(t, echoServer(t))
	c := mustDial(t, p.Addr())
	if err := roundTrip(c, []byte("one\n"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Stall()
	if err := roundTrip(c, []byte("two\n"), 300*time.Millisecond); !isTimeout(err) {
		t.Fatalf("round trip while stalled: %v, want a timeout", err)
	}
	if p.Active() != 1 {
		t.Errorf("Active() = %d while stalled, want 1 (kept open)", p.Active())
	}
	p.Restore()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "two\n" {
		t.Fatalf("stalled bytes after Restore: %q, %v", got, err)
	}
	// Cut while stalled closes the stalled connection too.
	p.Stall()
	p.Cut()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read on a connection cut while stalled: %v, want EOF or reset", err)
	}
}

func TestCutProxyRefuse(t *testing.T) {
	p := NewCutProxy(t, echoServer(t))
	old := mustDial(t, p.Addr())
	if err := roundTrip(old, []byte("x\n"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	held := mustDial(t, p.Addr())
	waitFor(t, "the held connection", func() bool { return p.Held() == 1 })
	p.Refuse()
	for name, c := range map[string]net.Conn{"open": old, "held": held} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("%s connection after Refuse: %v, want EOF or reset", name, err)
		}
	}
	_, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial while refusing: %v, want connection refused", err)
	}
	p.Restore()
	if err := roundTrip(mustDial(t, p.Addr()), []byte("back\n"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestCutProxyTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()
	p := NewCutProxy(t, target)
	c := mustDial(t, p.Addr())
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("read through a proxy whose target is down: %v, want EOF or reset", err)
	}
}
