// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/maildirector/maildirector/internal/testtls"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (dialed, accepted net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		ch <- c
	}()
	dialed, err = net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	accepted = <-ch
	if accepted == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { dialed.Close(); accepted.Close() })
	return dialed, accepted
}

// tlsPair runs a handshake over a TCP pair.
func tlsPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	sc, cc := testtls.Configs(t)
	d, a := tcpPair(t)
	tc, ts := tls.Client(d, cc), tls.Server(a, sc)
	errc := make(chan error, 1)
	go func() { errc <- ts.Handshake() }()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return tc, ts
}

// TestRelay sends a few megabytes each way, at once, in uneven chunks with
// pauses (so the relay goes idle and wakes up again), through every mix of
// TCP and TLS, with bytes already buffered on both sides at the start; the
// far ends must see exactly what was sent, in order, and the end of one
// side must end the relay and be seen by the other.
func TestRelay(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		clientTLS, backendTLS bool
	}{
		{"tcp-tcp", false, false},
		{"tls-tcp", true, false},
		{"tcp-tls", false, true},
		{"tls-tls", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, gwClient := tcpPair(t)
			if tc.clientTLS {
				user, gwClient = tlsPair(t)
			}
			gwBackend, server := tcpPair(t)
			if tc.backendTLS {
				gwBackend, server = tlsPair(t)
			}
			// A relay that loses bytes must fail the test, not hang it.
			user.SetDeadline(time.Now().Add(30 * time.Second))
			server.SetDeadline(time.Now().Add(30 * time.Second))
			// Bytes the login phase read ahead on both sides.
			user.Write([]byte("early-from-client "))
			server.Write([]byte("early-from-backend "))
			cc := &ClientConn{conn: gwClient, R: bufio.NewReader(gwClient), W: bufio.NewWriter(gwClient)}
			bc := NewBackendConn(gwBackend)
			if _, err := cc.R.Peek(len("early-from-client ")); err != nil {
				t.Fatal(err)
			}
			if _, err := bc.R.Peek(len("early-from-backend ")); err != nil {
				t.Fatal(err)
			}

			var reg Registry
			s := &Session{User: "u"}
			type counts struct{ in, out int64 }
			relayed := make(chan counts, 1)
			go func() {
				in, out := Relay(cc, bc, s, &reg)
				relayed <- counts{in, out}
			}()

			up, down := randomBytes(t, 3<<20), randomBytes(t, 2<<20)
			sendErr := make(chan error, 2)
			go func() { sendErr <- sendUneven(user, up) }()
			go func() { sendErr <- sendUneven(server, down) }()
			gotUp := make([]byte, len("early-from-client ")+len(up))
			gotDown := make([]byte, len("early-from-backend ")+len(down))
			readErr := make(chan error, 1)
			go func() {
				_, err := io.ReadFull(server, gotUp)
				readErr <- err
			}()
			if _, err := io.ReadFull(user, gotDown); err != nil {
				t.Fatalf("client side: %v", err)
			}
			if err := <-readErr; err != nil {
				t.Fatalf("backend side: %v", err)
			}
			for range 2 {
				if err := <-sendErr; err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(gotUp, append([]byte("early-from-client "), up...)) {
				t.Error("backend received other bytes than the client sent")
			}
			if !bytes.Equal(gotDown, append([]byte("early-from-backend "), down...)) {
				t.Error("client received other bytes than the backend sent")
			}
			if n := reg.Count(); n != 1 {
				t.Errorf("registry holds %d sessions during the relay", n)
			}

			// The client leaves: the relay ends and the backend sees it.
			user.Close()
			select {
			case c := <-relayed:
				if c.in != int64(len(gotUp)) || c.out != int64(len(gotDown)) {
					t.Errorf("Relay counted in=%d out=%d, want %d and %d", c.in, c.out, len(gotUp), len(gotDown))
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Relay did not return after the client closed")
			}
			server.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := server.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("backend read %d bytes, %v after the client left", n, err)
			}
			if n := reg.Count(); n != 0 {
				t.Errorf("registry holds %d sessions after the relay", n)
			}
		})
	}
}

// TestRelayKick ends an idle relay from the registry.
func TestRelayKick(t *testing.T) {
	user, gwClient := tcpPair(t)
	gwBackend, server := tcpPair(t)
	cc := &ClientConn{conn: gwClient, R: bufio.NewReader(gwClient), W: bufio.NewWriter(gwClient)}
	var reg Registry
	done := make(chan struct{})
	go func() {
		Relay(cc, NewBackendConn(gwBackend), &Session{User: "victim"}, &reg)
		close(done)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for reg.Count() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n := reg.Kick("someone-else"); n != 0 {
		t.Fatalf("kicked %d sessions of another user", n)
	}
	if n := reg.Kick("victim"); n != 1 {
		t.Fatalf("kicked %d sessions, want 1", n)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Relay did not return after the kick")
	}
	for _, c := range []net.Conn{user, server} {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a far end stayed open after the kick")
		}
	}
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// sendUneven writes b in chunks of 1 byte up to 64 KiB, now and then
// pausing long enough for the relay to find nothing to read.
func sendUneven(w io.Writer, b []byte) error {
	sizes := []int{1, 7, 300, 2048, 2049, 16 << 10, 64 << 10, 5}
	for i := 0; len(b) > 0; i++ {
		n := min(sizes[i%len(sizes)], len(b))
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
		if i%16 == 0 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	return nil
}

// BenchmarkRelayThroughput moves 8 MiB per op through the relay's copy
// loops, next to the plain copies they replace, side by side. tcp: backend
// socket to client socket through pump, and through io.Copy (a kernel
// splice that holds its pipes while idle, which the relay used before it
// learned to wait for readable). tls: a TLS client's upload to a backend
// socket through copyBlocking (2 KiB held while idle), and through
// io.CopyBuffer with a 16 KiB buffer (held while idle).
//
//	go test ./gateway -run '^$' -bench RelayThroughput -benchtime 2s -count 3
func BenchmarkRelayThroughput(b *testing.B) {
	type copier func(dst, src net.Conn)
	cases := []struct {
		name string
		tls  bool
		copy copier
	}{
		{"tcp/pump", false, func(dst, src net.Conn) { pump(dst, src, nil) }},
		{"tcp/io.Copy", false, func(dst, src net.Conn) { io.Copy(dst, src) }},
		{"tls/copyBlocking", true, func(dst, src net.Conn) { copyBlocking(dst, src) }},
		{"tls/io.CopyBuffer-16K", true, func(dst, src net.Conn) {
			io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 16<<10))
		}},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			src, gwIn := tcpPair(b)
			if tc.tls {
				src, gwIn = tlsPair(b)
			}
			gwOut, dst := tcpPair(b)
			go func() {
				tc.copy(gwOut, gwIn)
				gwOut.Close()
			}()
			chunk := make([]byte, 64<<10)
			const perOp = 8 << 20
			b.SetBytes(perOp)
			go func() {
				for i := 0; i < b.N*perOp/len(chunk); i++ {
					if _, err := src.Write(chunk); err != nil {
						return
					}
				}
				src.Close()
			}()
			got, _ := io.Copy(io.Discard, dst)
			if got != int64(b.N)*perOp {
				b.Fatalf("relayed %d bytes, want %d", got, int64(b.N)*perOp)
			}
		})
	}
}

// TestRelayUrgentData: a client that sends TCP urgent data (telnet-style
// interrupts; some scanners do) must not stall its session: splice stops
// at the urgent mark, so the relay reads past it. The urgent byte itself
// is out of band and not relayed.
func TestRelayUrgentData(t *testing.T) {
	user, gwClient := tcpPair(t)
	gwBackend, server := tcpPair(t)
	cc := &ClientConn{conn: gwClient, R: bufio.NewReader(gwClient), W: bufio.NewWriter(gwClient)}
	var reg Registry
	go Relay(cc, NewBackendConn(gwBackend), &Session{User: "u"}, &reg)

	sendOOB(t, user, "abc", "!", "def")
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, 6)
	if _, err := io.ReadFull(server, got); err != nil {
		t.Fatalf("backend got %q, then %v", got, err)
	}
	if string(got) != "abcdef" {
		t.Fatalf("backend got %q, want abcdef", got)
	}
	// And the session goes on, both ways.
	user.Write([]byte("more"))
	if _, err := io.ReadFull(server, got[:4]); err != nil || string(got[:4]) != "more" {
		t.Fatalf("after the urgent byte: %q, %v", got[:4], err)
	}
	server.Write([]byte("back"))
	user.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(user, got[:4]); err != nil || string(got[:4]) != "back" {
		t.Fatalf("backend to client: %q, %v", got[:4], err)
	}
}
