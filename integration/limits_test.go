// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// startLimitsEnv runs a gateway with an IMAP listener, limits (YAML flow
// map) and an admin listener for its metrics. Clients are not in
// trusted_networks: the per-address bounds apply to them.
func startLimitsEnv(t *testing.T, limits string) *metricsEnv {
	t.Helper()
	e := startBackends(t, []string{"127.0.0.61", "127.0.0.62"}, 60)
	m := &metricsEnv{env: e}
	var addrs []string
	for range 2 {
		port, err := harness.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, "127.0.0.1:"+strconv.Itoa(port))
	}
	e.gwAddr, m.api = addrs[0], addrs[1]
	tokens := filepath.Join(e.dir, "admin-tokens")
	if err := os.WriteFile(tokens, []byte("prometheus "+adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.limits = limits
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: imap, address: %q}\n", e.gwAddr), "proxy=y nopassword=y",
		fmt.Sprintf("allow_plaintext: true\nadmin:\n  listen: %q\n  token_file: %s\n", m.api, tokens))
	return m
}

// flood opens n connections to addr, from the source addresses src(i),
// and keeps them until the test ends. alive counts those the gateway has
// not closed (a reader per connection watches for the close).
type flood struct {
	conns  []net.Conn
	closed atomic.Int64
	wg     sync.WaitGroup
}

func startFlood(t *testing.T, addr string, n int, src func(i int) string) *flood {
	return startFloodWatched(t, addr, n, src, true)
}

// startFloodWatched is startFlood; without watch, no reader watches the
// connections (the race detector allows only 8,128 goroutines) and alive
// is not known.
func startFloodWatched(t *testing.T, addr string, n int, src func(i int) string, watch bool) *flood {
	t.Helper()
	f := &flood{}
	t.Cleanup(func() {
		for _, c := range f.conns {
			c.Close()
		}
		f.wg.Wait()
	})
	for i := range n {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src(i))}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood connection %d from %s: %v", i, src(i), err)
		}
		f.conns = append(f.conns, c)
		if !watch {
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			// Read whatever comes (the greeting) until the gateway
			// closes the connection; the test's cleanup closes the rest.
			io.Copy(io.Discard, c)
			f.closed.Add(1)
		}()
	}
	return f
}

func (f *flood) alive() int { return len(f.conns) - int(f.closed.Load()) }

// waitFor polls cond until it holds or 30 s passed.
func waitUntil(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within 30 s: %s", what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// loginLogout logs user in over IMAP through addr and out again, from
// the source address from ("" for any).
func loginLogout(addr, from, user string) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return err
	}
	c := &tclient{conn: conn, r: bufio.NewReader(conn)}
	defer c.close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if g, err := c.r.ReadString('\n'); err != nil || !strings.HasPrefix(g, "* OK") {
		return fmt.Errorf("greeting %q: %v", g, err)
	}
	if r, err := c.login(user); err != nil || !strings.HasPrefix(r, "OK") {
		return fmt.Errorf("login %s: %q %v", user, r, err)
	}
	if r, err := c.do("LOGOUT"); err != nil || !strings.HasPrefix(r, "OK") {
		return fmt.Errorf("logout %s: %q %v", user, r, err)
	}
	return nil
}

// TestPreloginFlood: 4,000 idle connections from 4,000 loopback addresses
// against max_prelogin_connections 2,000 leave at most 2,000 open (the
// oldest idle ones make room), and 50 real logins meanwhile all work;
// then 100 connections from one address against max_prelogin_per_ip 20
// leave at most 20 of them.
func TestPreloginFlood(t *testing.T) {
	m := startLimitsEnv(t, "{auth_failure_delay: 0s, auth_penalty_max: 0s, max_prelogin_connections: 2000, max_prelogin_per_ip: 20}")
	e := m.env
	many := startFlood(t, e.gwAddr, 4000, func(i int) string { return fmt.Sprintf("127.1.%d.%d", i/250, i%250+1) })
	waitUntil(t, "the flood trimmed to the bound", func() (bool, string) {
		s := m.scrape(t)
		open, _ := s.get("maildirector_prelogin_connections", "protocol", "imap")
		return many.alive() <= 2000 && open <= 2000, fmt.Sprintf("%d flood connections alive, gateway counts %v", many.alive(), open)
	})
	if many.alive() < 1900 {
		t.Errorf("only %d flood connections alive: the bound should keep up to 2,000, not drop more", many.alive())
	}
	// Real clients still get in, 50 at once from 50 addresses: each takes
	// an idle flood connection's place.
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := loginLogout(e.gwAddr, fmt.Sprintf("127.4.0.%d", i+1), userName(i)); err != nil {
				t.Errorf("login during the flood: %v", err)
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	s := m.scrape(t)
	ok, _ := s.get("maildirector_logins_total", "protocol", "imap", "result", "ok")
	evicted, _ := s.get("maildirector_prelogin_evictions_total")
	t.Logf("flood of 4,000: %d alive, %v evicted, 50 logins: %v ok, %d failed", many.alive(), evicted, ok, failed.Load())
	if ok != 50 {
		t.Errorf("logins ok = %v, want 50", ok)
	}

	one := startFlood(t, e.gwAddr, 100, func(int) string { return "127.2.0.1" })
	waitUntil(t, "one address trimmed to 20", func() (bool, string) {
		return one.alive() <= 20, fmt.Sprintf("%d of 100 alive", one.alive())
	})
	if one.alive() < 15 {
		t.Errorf("only %d connections of one address alive, want up to 20", one.alive())
	}
	// The address's newest connection is a working one.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.2.0.1")}}
	c, err := d.Dial("tcp", e.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	if g, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting from a busy address: %q %v", g, err)
	}
	fmt.Fprintf(c, "a LOGIN %s %s\r\n", quoted(userName(1)), quoted(password(userName(1))))
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "a OK") {
		t.Fatalf("login from a busy address: %q %v", l, err)
	}
}

// TestPreloginFloodToTheDescriptorLimit: with the default bound (a
// quarter of the open-files limit), a flood of as many connections as
// this test process can open (near the limit both processes share) leaves
// the gateway holding no more than its bound, and logins working.
func TestPreloginFloodToTheDescriptorLimit(t *testing.T) {
	m := startLimitsEnv(t, "{auth_failure_delay: 0s, auth_penalty_max: 0s}")
	e := m.env
	max, _ := m.scrape(t).get("maildirector_prelogin_connections_max")
	if max < 100 {
		t.Fatalf("default bound %v", max)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	// Leave room for the test's own files and clients.
	n := int(rl.Cur) - 1500
	startFloodWatched(t, e.gwAddr, n, func(i int) string { return fmt.Sprintf("127.3.%d.%d", i/250, i%250+1) }, false)
	var open float64
	waitUntil(t, "the gateway holds at most its bound", func() (bool, string) {
		open, _ = m.scrape(t).get("maildirector_prelogin_connections", "protocol", "imap")
		return open <= max, fmt.Sprintf("%v open, bound %v", open, max)
	})
	for i := range 10 {
		if err := loginLogout(e.gwAddr, "", userName(i)); err != nil {
			t.Fatalf("login during a flood of %d: %v", n, err)
		}
	}
	s := m.scrape(t)
	fds, _ := s.get("process_open_fds")
	evicted, _ := s.get("maildirector_prelogin_evictions_total")
	t.Logf("open files limit %d; flood of %d connections: the gateway holds %v before login (bound %v), %v evicted, %v fds open; logins work",
		rl.Cur, n, open, max, evicted, fds)
}

// TestSlowlorisCut: a client that trickles a command a byte at a time is
// cut at the login deadline, however steadily it sends.
func TestSlowlorisCut(t *testing.T) {
	m := startLimitsEnv(t, "{auth_failure_delay: 0s, auth_penalty_max: 0s, login_timeout: 3s}")
	c, err := net.Dial("tcp", m.env.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	stop := make(chan struct{})
	go func() {
		for _, b := range []byte("a LOGIN " + strings.Repeat("x", 200)) {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
		}
	}()
	defer close(stop)
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	bye, err := r.ReadString('\n')
	if err != nil || bye != "* BYE Disconnected for inactivity.\r\n" {
		t.Fatalf("trickling client got %q %v, want the inactivity BYE", bye, err)
	}
	if _, err := r.ReadString('\n'); err != io.EOF {
		t.Fatalf("connection not closed after the BYE: %v", err)
	}
	t.Logf("trickling client cut after %v (login_timeout 3s)", time.Since(start).Round(100*time.Millisecond))
}

// TestLongIDAndUserIPLimit: a long pre-login ID (30 KiB, 200 fields) is
// answered OK and the login after it works; a third session over
// max_userip_connections 2 is refused as a limit, not as a failure.
func TestLongIDAndUserIPLimit(t *testing.T) {
	m := startLimitsEnv(t, "{auth_failure_delay: 0s, auth_penalty_max: 0s, max_userip_connections: 2}")
	e := m.env
	user := userName(7)
	var long strings.Builder
	long.WriteString("ID (")
	for i := range 200 {
		if i > 0 {
			long.WriteByte(' ')
		}
		fmt.Fprintf(&long, `"key-%03d" "%s"`, i, strings.Repeat("v", 140))
	}
	long.WriteString(")")
	var open []*tclient
	defer func() {
		for _, c := range open {
			c.close()
		}
	}()
	for i := range 2 {
		c, err := tdial(e.gwAddr)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		if i == 0 {
			if r, err := c.do("%s", long.String()); err != nil || r != "OK ID completed." {
				t.Fatalf("long ID (%d bytes): %q %v", long.Len(), r, err)
			}
		}
		if r, err := c.login(user); err != nil || !strings.HasPrefix(r, "OK") {
			t.Fatalf("session %d: %q %v", i+1, r, err)
		}
	}
	c, err := tdial(e.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	r, err := c.login(user)
	if want := "NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)"; err != nil || r != want {
		t.Fatalf("third session: %q %v, want %q", r, err, want)
	}
	waitUntil(t, "counted as a limit", func() (bool, string) {
		n, _ := m.scrape(t).get("maildirector_logins_total", "protocol", "imap", "result", "limit")
		return n == 1, fmt.Sprintf("limit=%v", n)
	})
}

// TestUserIPLimitAcrossGateways: the backend counts a user's sessions
// from every gateway (the director keeps them all on it), and its
// refusal reaches the client as a limit: two sessions through two
// gateways, the third through either is NO [LIMIT].
func TestUserIPLimitAcrossGateways(t *testing.T) {
	users := map[string]string{}
	for i := range 10 {
		users[userName(i)] = password(userName(i))
	}
	e := startBackendsWith(t, []string{"127.0.0.63", "127.0.0.64"}, users, func(o *harness.DovecotOptions) { o.MaxUserIPConnections = 2 })
	// The gateways' own count is off: only the backend's applies.
	e.limits = "{auth_failure_delay: 0s, auth_penalty_max: 0s, max_userip_connections: 0}"
	e.startGateway(t, "proxy=y nopassword=y", "allow_plaintext: true\n")
	gwA := e.gwAddr
	e.startGateway(t, "proxy=y nopassword=y", "allow_plaintext: true\n")
	gwB := e.gwAddr
	user := userName(3)
	var open []*tclient
	defer func() {
		for _, c := range open {
			c.close()
		}
	}()
	for _, gw := range []string{gwA, gwB} {
		c, err := tdial(gw)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, c)
		if r, err := c.login(user); err != nil || !strings.HasPrefix(r, "OK") {
			t.Fatalf("session through %s: %q %v", gw, r, err)
		}
	}
	for _, gw := range []string{gwA, gwB} {
		c, err := tdial(gw)
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.login(user)
		c.close()
		if want := "NO [LIMIT] Maximum number of connections from user+IP exceeded (mail_max_userip_connections=2)"; err != nil || r != want {
			t.Fatalf("third session through %s: %q %v, want %q", gw, r, err, want)
		}
	}
}
