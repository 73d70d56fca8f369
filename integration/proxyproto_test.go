// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"

	"github.com/maildirector/maildirector/integration/harness"
)

// dialBehindProxy connects like a load balancer: from 127.0.0.1, first a
// PROXY header (v1 or v2) naming the real client.
func dialBehindProxy(t *testing.T, addr string, version byte, client string) *client {
	t.Helper()
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	src, _ := net.ResolveTCPAddr("tcp", client)
	h := proxyproto.HeaderProxyFromAddrs(version, src, conn.RemoteAddr())
	if _, err := h.WriteTo(conn); err != nil {
		t.Fatal(err)
	}
	return wrapClient(t, conn)
}

// TestProxyProtocolInbound: behind a trusted load balancer, the client's
// real address (PROXY v1 and v2) is the one the backend sees (forwarded
// with ID); a peer outside haproxy_trusted_networks is refused.
func TestProxyProtocolInbound(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 6)
	port, _ := harness.FreePort("127.0.0.1")
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: imap, address: %q, haproxy: true}\n", e.gwAddr),
		staticPassdb("proxy=y nopassword=y"), "haproxy_trusted_networks: [127.0.0.1/32]\nallow_plaintext: true\n")
	for _, tc := range []struct {
		version byte
		client  string
		user    string
	}{{2, "192.0.2.44:5555", userName(1)}, {1, "198.51.100.7:6666", userName(2)}} {
		c := dialBehindProxy(t, e.gwAddr, tc.version, tc.client)
		if st := c.login(tc.user, password(tc.user)); !strings.HasPrefix(st, "OK") {
			t.Fatalf("v%d: %s", tc.version, st)
		}
		c.close()
		ip, _, _ := strings.Cut(tc.client, ":")
		b := e.backendByIP(e.ringBackend(tc.user))
		if !logHas(b, "Login: user=<"+tc.user+">, method=PLAIN, rip="+ip+",") {
			t.Errorf("PROXY v%d: backend did not see %s for %s:\n%s", tc.version, ip, tc.user, lastLines(b.Log(), 3))
		}
	}
	// Not from the balancer: refused before a greeting.
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}).Dial("tcp", e.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if data, _ := io.ReadAll(conn); len(data) != 0 {
		t.Fatalf("untrusted peer was greeted: %q", data)
	}
}

// TestProxyProtocolToBackend: with send_proxy_protocol the backend learns
// the client's address from a PROXY v2 header (Dovecot haproxy = yes),
// not from ID.
func TestProxyProtocolToBackend(t *testing.T) {
	hp, err := harness.FreePort("127.0.0.11", "127.0.0.12")
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for i := 0; i < 6; i++ {
		users[userName(i)] = password(userName(i))
	}
	e := startBackendsWith(t, []string{"127.0.0.11", "127.0.0.12"}, users, func(o *harness.DovecotOptions) { o.HAProxyIMAPPort = hp })
	e.backendExtra = "  send_proxy_protocol: true\n"
	e.port = hp // the gateway's backend.ports.imap
	e.startGateway(t, "proxy=y nopassword=y", trusted)
	u := userName(3)
	c := dial(t, e.gwAddr, "127.0.5.9")
	if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK") {
		t.Fatal(st)
	}
	c.close()
	b := e.backendByIP(e.ringBackend(u))
	re := regexp.MustCompile(`Login: user=<` + regexp.QuoteMeta(u) + `>, method=PLAIN, rip=127\.0\.5\.9,`)
	waitFor(t, func() bool { return re.MatchString(b.Log()) })
}
