// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"io"
	"net"
	"testing"
	"time"
)

// inData starts a delivery to a1@x and returns once backend A has the
// whole message and is holding its reply back.
func inData(t *testing.T, e *tenv) *tclient {
	t.Helper()
	e.a.received, e.a.hold = make(chan struct{}, 1), make(chan struct{})
	c := e.dial(t)
	c.do("LHLO mta", "250 SIZE")
	c.do("MAIL FROM:<s@x>", "250 2.1.0 OK")
	c.do("RCPT TO:<a1@x>", "250 2.1.5 OK")
	c.do("DATA", "354 OK")
	io.WriteString(c.c, "Subject: t\r\n\r\nbody\r\n.\r\n")
	select {
	case <-e.a.received:
	case <-time.After(10 * time.Second):
		t.Fatal("backend never got the message")
	}
	return c
}

// stop runs what SIGTERM runs and reports when it has returned.
func stop(e *tenv, grace time.Duration) <-chan struct{} {
	stopped := make(chan struct{})
	go func() {
		e.cancel()
		e.gs.Shutdown(grace)
		close(stopped)
	}()
	return stopped
}

func expectClosed(t *testing.T, c *tclient, what string) {
	t.Helper()
	c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := c.r.ReadString('\n'); err == nil {
		t.Fatalf("%s: got %q, want the connection closed", what, l)
	}
}

// TestShutdownLetsDataFinish: a stopping gateway closes idle LMTP
// connections at once but lets a delivery whose message reached the
// backend finish, so that its client hears the backend's 250 (and is then
// told 421) instead of delivering again later.
func TestShutdownLetsDataFinish(t *testing.T) {
	e := startLMTP(t, nil)
	idle := e.dial(t)
	idle.do("LHLO idle", "250 SIZE")
	c := inData(t, e)

	stopped := stop(e, 30*time.Second)
	expectClosed(t, idle, "idle connection")
	if conn, err := net.DialTimeout("tcp", e.addr, time.Second); err == nil {
		conn.Close()
		t.Error("the listener still accepts while stopping")
	}
	select {
	case <-stopped:
		t.Fatal("Shutdown returned while a delivery was in progress")
	default:
	}

	close(e.a.hold) // the backend delivers and answers
	c.expect("250 2.0.0 <r0> Saved", "421 4.3.2 Service shutting down")
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after the delivery ended")
	}
}

// TestShutdownGraceRunsOut: a delivery that does not finish within the
// grace is cut, its backend connection too, so Shutdown returns without
// waiting out the backend timeout (a minute here).
func TestShutdownGraceRunsOut(t *testing.T) {
	e := startLMTP(t, func(s *Server) { s.Timeout = time.Minute })
	c := inData(t, e)
	t.Cleanup(func() { close(e.a.hold) })
	stopped := stop(e, 100*time.Millisecond)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown did not return after its grace")
	}
	expectClosed(t, c, "delivery past the grace")
}
