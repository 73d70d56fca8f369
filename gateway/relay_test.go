// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"runtime"
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

// relayConns relays between the gateway's ends of a client and a backend
// connection until one side ends.
func relayConns(client, backend net.Conn) (in, out int64) {
	cc := &ClientConn{conn: client, R: bufio.NewReader(client), W: bufio.NewWriter(client)}
	var reg Registry
	return Relay(cc, NewBackendConn(backend), &Session{User: "u"}, &reg)
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
// socket to client socket through a whole relay (the poller, splicing what
// is ready; until the poller it was pump, the same copying with a parked
// goroutine per direction), and through io.Copy (a kernel splice that
// holds its pipes while idle, which the relay used before it learned to
// wait for readable). tls: a TLS client's upload to a backend socket
// through a whole relay (the poller watching the TLS socket, nothing held
// while idle), through copyBlocking (2 KiB held while idle, what the relay
// did before), and through io.CopyBuffer with a 16 KiB buffer (held while
// idle).
//
//	go test ./gateway -run '^$' -bench RelayThroughput -benchtime 2s -count 3
func BenchmarkRelayThroughput(b *testing.B) {
	type copier func(dst, src net.Conn)
	relay := func(dst, src net.Conn) { relayConns(src, dst) }
	cases := []struct {
		name  string
		tls   bool
		copy  copier
		chunk int // the source's write size
	}{
		{"tcp/relay", false, relay, 64 << 10},
		{"tcp/io.Copy", false, func(dst, src net.Conn) { io.Copy(dst, src) }, 64 << 10},
		// Dovecot writes a FETCH in pieces of 8 KiB and less.
		{"tcp-8K-writes/relay", false, relay, 8 << 10},
		{"tcp-8K-writes/io.Copy", false, func(dst, src net.Conn) { io.Copy(dst, src) }, 8 << 10},
		{"tls/relay", true, relay, 64 << 10},
		{"tls/copyBlocking", true, func(dst, src net.Conn) { copyBlocking(dst, src) }, 64 << 10},
		{"tls/io.CopyBuffer-16K", true, func(dst, src net.Conn) {
			io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 16<<10))
		}, 64 << 10},
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
			chunk := make([]byte, tc.chunk)
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

// idleRelays starts n relays through StartRelay, each between a client
// and a backend TCP pair, and returns the far ends and the channel each
// relay's end reports on.
// goroutines counts NumGoroutine's rise from the relays' start.
func idleRelays(t *testing.T, reg *Registry, n int, overTLS bool) (users, servers []net.Conn, ended chan [2]int64, goroutines func() int) {
	t.Helper()
	ended = make(chan [2]int64, n)
	var gwClients, gwBackends []net.Conn
	for range n {
		user, gwClient := tcpPair(t)
		gwBackend, server := tcpPair(t)
		if overTLS {
			user, gwClient = tlsPair(t)
			gwBackend, server = tlsPair(t)
		}
		users, servers = append(users, user), append(servers, server)
		gwClients, gwBackends = append(gwClients, gwClient), append(gwBackends, gwBackend)
	}
	before := runtime.NumGoroutine()
	for i := range n {
		cc := &ClientConn{conn: gwClients[i], R: bufio.NewReader(gwClients[i]), W: bufio.NewWriter(gwClients[i])}
		StartRelay(cc, NewBackendConn(gwBackends[i]), &Session{User: "u"}, reg, func(in, out int64) { ended <- [2]int64{in, out} })
	}
	return users, servers, ended, func() int { return runtime.NumGoroutine() - before }
}

// TestRelayIdleHoldsNoGoroutine: idle sessions, over plain TCP and over
// TLS, wait in the Registry's poller, not in goroutines of their own, and
// still relay both ways when bytes come; once they are over the poller
// goes too.
func TestRelayIdleHoldsNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the poller is Linux's epoll")
	}
	for _, overTLS := range []bool{false, true} {
		name := "tcp"
		if overTLS {
			name = "tls"
		}
		t.Run(name, func(t *testing.T) { testRelayIdle(t, overTLS) })
	}
}

func testRelayIdle(t *testing.T, overTLS bool) {
	const n = 50
	var reg Registry
	users, servers, ended, g := idleRelays(t, &reg, n, overTLS)
	// A TLS direction starts on a goroutine (crypto/tls may hold records
	// already) and hands its socket to the poller when it finds none.
	for deadline := time.Now().Add(10 * time.Second); g() > 1 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if g := g(); g > 1 {
		t.Errorf("%d idle sessions hold %d goroutines, want at most the poller's", n, g)
	}
	buf := make([]byte, 5)
	for i := range n {
		users[i].Write([]byte("ping!"))
		servers[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(servers[i], buf); err != nil || string(buf) != "ping!" {
			t.Fatalf("session %d: backend got %q, %v", i, buf, err)
		}
		servers[i].Write([]byte("pong!"))
		users[i].SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.ReadFull(users[i], buf); err != nil || string(buf) != "pong!" {
			t.Fatalf("session %d: client got %q, %v", i, buf, err)
		}
	}
	for i := range n {
		if i%2 == 0 {
			users[i].Close()
		} else {
			servers[i].Close()
		}
	}
	for range n {
		select {
		case c := <-ended:
			if c != [2]int64{5, 5} {
				t.Errorf("a session counted %v bytes, want 5 each way", c)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a session did not end after a side closed")
		}
	}
	if reg.Count() != 0 {
		t.Errorf("registry holds %d sessions after they ended", reg.Count())
	}
	// The poller's set closes once nothing has used it for pollerLinger
	// (here: at once).
	lingerNow(&reg.poll)
	if pollerOpen(&reg.poll) {
		t.Error("the poller's epoll set stays open after every session ended")
	}
}

// TestRelayCut: a stopping server's cut (CloseOnCut) ends an idle relay,
// which closes both sides; so does a close before the relay started.
func TestRelayCut(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		user, gwClient := tcpPair(t)
		gwBackend, server := tcpPair(t)
		st := &connState{}
		cc := &ClientConn{conn: gwClient, R: bufio.NewReader(gwClient), W: bufio.NewWriter(gwClient), state: st}
		var reg Registry
		ended := make(chan struct{})
		StartRelay(cc, NewBackendConn(gwBackend), &Session{User: "u"}, &reg, func(int64, int64) { close(ended) })
		// As Server.Shutdown does: the accepted socket first, then the rest.
		gwClient.Close()
		st.cutAll()
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatal("the relay did not end when the server cut its connection")
		}
		expectClosed(t, user, server)
	})
	t.Run("before start", func(t *testing.T) {
		user, gwClient := tcpPair(t)
		gwBackend, server := tcpPair(t)
		cc := &ClientConn{conn: gwClient, R: bufio.NewReader(gwClient), W: bufio.NewWriter(gwClient)}
		s := &Session{User: "u", relay: newRelay(gwClient, gwBackend)}
		s.relay.close()
		var reg Registry
		ended := make(chan struct{})
		StartRelay(cc, NewBackendConn(gwBackend), s, &reg, func(int64, int64) { close(ended) })
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatal("a relay closed before it started did not end")
		}
		expectClosed(t, user, server)
		if reg.Count() != 0 {
			t.Errorf("registry holds %d sessions", reg.Count())
		}
	})
}

// TestRelayProxyHeader: behind a PROXY header the client's bytes come in
// order from the login's reader, then from the header's reader, then
// from the socket, which the poller watches.
func TestRelayProxyHeader(t *testing.T) {
	user, gwClient := tcpPair(t)
	gwBackend, server := tcpPair(t)
	user.Write([]byte("PROXY TCP4 192.0.2.1 192.0.2.2 1234 143\r\nA1 LOGIN\r\nA2 NOOP\r\n"))
	conn, _, err := readProxyHeader(gwClient, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cc := &ClientConn{conn: conn, R: bufio.NewReaderSize(conn, 16), W: bufio.NewWriter(conn)}
	if line, err := cc.R.ReadString('\n'); err != nil || line != "A1 LOGIN\r\n" {
		t.Fatalf("login line %q, %v", line, err)
	}
	var reg Registry
	ended := make(chan [2]int64, 1)
	StartRelay(cc, NewBackendConn(gwBackend), &Session{User: "u"}, &reg, func(in, out int64) { ended <- [2]int64{in, out} })
	user.Write([]byte("A3 IDLE\r\n"))
	want := "A2 NOOP\r\nA3 IDLE\r\n"
	got := make([]byte, len(want))
	server.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(server, got); err != nil || string(got) != want {
		t.Fatalf("backend got %q, %v; want %q", got, err, want)
	}
	user.Close()
	select {
	case c := <-ended:
		if c[0] != int64(len(want)) {
			t.Errorf("counted %d bytes in, want %d", c[0], len(want))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not end")
	}
}

func expectClosed(t *testing.T, conns ...net.Conn) {
	t.Helper()
	for _, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("a far end stayed open")
		}
	}
}
