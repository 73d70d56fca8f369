// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// startLMTPGateway runs the gateway with a TCP LMTP listener (e.gwAddr)
// and a UNIX socket one (returned).
func (e *env) startLMTPGateway(t testing.TB, passdbs, extra string) string {
	t.Helper()
	port, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	sock := filepath.Join(e.dir, "lmtp.sock")
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: lmtp, address: %q}\n  - {protocol: lmtp, address: %q}\n", e.gwAddr, sock), passdbs, extra)
	return sock
}

// delivered returns how many messages with msgID user's maildir holds.
func (e *env) delivered(t testing.TB, user, msgID string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(e.dir, "mail", user, "Maildir", sub, "*"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err == nil && strings.Contains(string(data), "Message-ID: <"+msgID+">") {
				n++
			}
		}
	}
	return n
}

// savedOn reports whether backend b's log shows a delivery to user.
func savedOn(b *harness.Dovecot, user string) bool {
	return logHas(b, "lmtp("+user+")", "saved mail to INBOX")
}

func message(id, body string) string {
	return fmt.Sprintf("From: sender@example.org\r\nTo: rcpts@example.com\r\nMessage-ID: <%s>\r\nSubject: %s\r\n\r\n%s\r\n.dot-stuffed line\r\n", id, id, body)
}

// TestLMTPDelivery: several recipients on two backends in one transaction,
// over TCP and over the UNIX socket; each lands once, on its ring backend;
// an unknown recipient gets the backend's 550 and the others are not
// affected; MAIL FROM parameters are passed on.
func TestLMTPDelivery(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 20)
	sock := e.startLMTPGateway(t, staticPassdb("proxy=y nopassword=y"), "")
	rcpts := []string{userName(1), userName(2), userName(3), userName(4), userName(5), userName(6)}
	onBoth := map[string]bool{}
	for _, r := range rcpts {
		onBoth[e.ringBackend(r)] = true
	}
	if len(onBoth) != 2 {
		t.Fatalf("recipients do not span both backends: %v", onBoth)
	}
	c := dialLMTP(t, e.gwAddr, "")
	defer c.close()
	if r := c.cmd("LHLO mta.example.org"); !strings.HasPrefix(r, "250 ") {
		t.Fatal(r)
	}
	withUnknown := append(append([]string{}, rcpts[:3]...), "nobody@example.com")
	withUnknown = append(withUnknown, rcpts[3:]...)
	if r := c.cmd("MAIL FROM:<sender@example.org> SIZE=300 BODY=8BITMIME SMTPUTF8"); !strings.HasPrefix(r, "250") {
		t.Fatal(r)
	}
	var accepted []string
	for _, r := range withUnknown {
		rep := c.cmd("RCPT TO:<%s>", r)
		if r == "nobody@example.com" {
			if !strings.HasPrefix(rep, "550 5.1.1") {
				t.Errorf("unknown recipient: %s", rep)
			}
			continue
		}
		if !strings.HasPrefix(rep, "250") {
			t.Fatalf("RCPT %s: %s", r, rep)
		}
		accepted = append(accepted, r)
	}
	if r := c.cmd("DATA"); !strings.HasPrefix(r, "354") {
		t.Fatal(r)
	}
	fmt.Fprint(c.conn, strings.ReplaceAll(message("tcp-1@test", "hello"), "\r\n.dot", "\r\n..dot")+".\r\n")
	for _, r := range accepted {
		if rep := c.reply(); !strings.HasPrefix(rep, "250") {
			t.Errorf("DATA reply for %s: %s", r, rep)
		}
	}
	for _, r := range accepted {
		if n := e.delivered(t, r, "tcp-1@test"); n != 1 {
			t.Errorf("%s has the message %d times", r, n)
		}
		if !savedOn(e.backendByIP(e.ringBackend(r)), r) {
			t.Errorf("%s was not delivered by its ring backend %s", r, e.ringBackend(r))
		}
	}
	// The dot-stuffed line arrived unstuffed.
	files, _ := filepath.Glob(filepath.Join(e.dir, "mail", rcpts[0], "Maildir", "new", "*"))
	if len(files) == 1 {
		data, _ := os.ReadFile(files[0])
		if !strings.Contains(string(data), "\n.dot-stuffed line") || strings.Contains(string(data), "..dot") {
			t.Errorf("message body damaged:\n%s", data)
		}
	}

	// Over the UNIX socket.
	u := dialLMTP(t, sock, "")
	defer u.close()
	u.cmd("LHLO local")
	_, data := u.deliver("sender@example.org", []string{userName(7), userName(8)}, message("unix-1@test", "via socket"))
	if len(data) != 2 || !strings.HasPrefix(data[0], "250") || !strings.HasPrefix(data[1], "250") {
		t.Fatalf("UNIX socket delivery: %v", data)
	}
	for _, r := range []string{userName(7), userName(8)} {
		if e.delivered(t, r, "unix-1@test") != 1 || !savedOn(e.backendByIP(e.ringBackend(r)), r) {
			t.Errorf("%s: UNIX socket delivery missing", r)
		}
	}
}

// TestLMTPDestuserKeepsDetail: destuser rewrites the address and keeps
// +detail.
func TestLMTPDestuserKeepsDetail(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 5)
	e.startLMTPGateway(t, staticPassdb("proxy=y nopassword=y destuser="+userName(2)), "")
	c := dialLMTP(t, e.gwAddr, "")
	defer c.close()
	c.cmd("LHLO mta")
	_, data := c.deliver("s@example.org", []string{"someone+lists@example.com"}, message("dest-1@test", "to the alias"))
	if len(data) != 1 || !strings.HasPrefix(data[0], "250") {
		t.Fatalf("%v", data)
	}
	if n := e.delivered(t, userName(2), "dest-1@test"); n != 1 {
		t.Fatalf("destuser got the message %d times", n)
	}
	b := e.backendByIP(e.ringBackend(userName(2)))
	if !logHas(b, "lmtp("+userName(2)+")") {
		t.Fatalf("not delivered on the destuser's ring backend")
	}
	files, _ := filepath.Glob(filepath.Join(e.dir, "mail", userName(2), "Maildir", "new", "*"))
	data0, _ := os.ReadFile(files[0])
	if want := "user002+lists@example.com"; !strings.Contains(string(data0), want) {
		t.Fatalf("the backend did not see the rewritten address %s with its detail:\n%s", want, data0)
	}
}

// TestLMTPFailures: a dead backend's recipients get 451 at RCPT, others
// are delivered; a delivery loop to the gateway itself is refused.
func TestLMTPFailures(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 20)
	e.backendTimeout = "3s"
	e.startLMTPGateway(t, staticPassdb("proxy=y nopassword=y"), "")
	dead, live := e.findUser(t, "127.0.0.12"), e.findUser(t, "127.0.0.11")
	e.backendByIP("127.0.0.12").Kill()
	c := dialLMTP(t, e.gwAddr, "")
	defer c.close()
	c.cmd("LHLO mta")
	rcptReplies, data := c.deliver("s@example.org", []string{dead, live}, message("fail-1@test", "x"))
	if !strings.HasPrefix(rcptReplies[0], "451 4.4.0") || !strings.HasPrefix(rcptReplies[1], "250") {
		t.Fatalf("RCPT replies %v", rcptReplies)
	}
	if len(data) != 1 || !strings.HasPrefix(data[0], "250") || e.delivered(t, live, "fail-1@test") != 1 {
		t.Fatalf("live recipient: %v", data)
	}
}

// TestLMTPLoops: a passdb that sends LMTP back to the gateway is refused
// (554 5.4.6); two gateways sending to each other stop when the proxy TTL
// (carried by XCLIENT) runs out.
func TestLMTPLoops(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11"}, 3)
	port, _ := harness.FreePort("127.0.0.1")
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: lmtp, address: %q}\n", e.gwAddr),
		staticPassdb(fmt.Sprintf("proxy=y nopassword=y host=127.0.0.1 port=%d", port)), "")
	c := dialLMTP(t, e.gwAddr, "")
	c.cmd("LHLO mta")
	c.cmd("MAIL FROM:<s@example.org>")
	if r := c.cmd("RCPT TO:<%s>", userName(1)); !strings.HasPrefix(r, "554 5.4.6") {
		t.Fatalf("self loop: %s", r)
	}
	c.close()

	// Two gateways, each the other's backend.
	pa, _ := harness.FreePort("127.0.0.1")
	pb, _ := harness.FreePort("127.0.0.1")
	a, b := &env{dir: filepath.Join(e.dir, "a"), backends: e.backends, port: e.port, lmtpPort: pb, hosts: e.hosts},
		&env{dir: filepath.Join(e.dir, "b"), backends: e.backends, port: e.port, lmtpPort: pa, hosts: e.hosts}
	os.MkdirAll(a.dir, 0o755)
	os.MkdirAll(b.dir, 0o755)
	a.gwAddr, b.gwAddr = "127.0.0.1:"+strconv.Itoa(pa), "127.0.0.1:"+strconv.Itoa(pb)
	for _, g := range []struct {
		env   *env
		other int
	}{{a, pb}, {b, pa}} {
		g.env.startGatewayWith(t, fmt.Sprintf("  - {protocol: lmtp, address: %q}\n", g.env.gwAddr),
			staticPassdb(fmt.Sprintf("proxy=y nopassword=y host=127.0.0.1 port=%d", g.other)), trusted)
	}
	c = dialLMTP(t, a.gwAddr, "")
	defer c.close()
	c.cmd("LHLO mta")
	c.cmd("MAIL FROM:<s@example.org>")
	if r := c.cmd("RCPT TO:<%s>", userName(1)); !strings.HasPrefix(r, "554 5.4.6") || !strings.Contains(r, "TTL") {
		t.Fatalf("ping-pong loop: %s", r)
	}
}

// TestLMTPAllowNetworks: TCP LMTP takes no login, so it answers only the
// networks it is told to.
func TestLMTPAllowNetworks(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11"}, 3)
	port, _ := harness.FreePort("127.0.0.1")
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: lmtp, address: %q, allow_networks: [127.0.0.1/32]}\n", e.gwAddr),
		staticPassdb("proxy=y nopassword=y"), "")
	c := dialLMTP(t, e.gwAddr, "127.0.0.1")
	c.close()
	d := &lmtpClient{t: t}
	conn, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.9")}}).Dial("tcp", e.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	d.conn = conn
	if data, _ := io.ReadAll(conn); len(data) != 0 {
		t.Fatalf("a client outside allow_networks was greeted: %q", data)
	}
}

// TestLMTPClients: swaks and Python's smtplib deliver through the gateway.
func TestLMTPClients(t *testing.T) {
	requireTools(t, "swaks", "python3")
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 5)
	sock := e.startLMTPGateway(t, staticPassdb("proxy=y nopassword=y"), "")
	host, port, _ := strings.Cut(e.gwAddr, ":")
	out, err := exec.Command("swaks", "--protocol", "LMTP", "--server", host, "--port", port,
		"--from", "s@example.org", "--to", userName(1)+","+userName(2),
		"--header", "Message-ID: <swaks-1@test>", "--body", "from swaks").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	for _, u := range []string{userName(1), userName(2)} {
		if e.delivered(t, u, "swaks-1@test") != 1 {
			t.Errorf("swaks: %s got nothing\n%s", u, out)
		}
	}
	script := fmt.Sprintf(`
import smtplib
for conn in (smtplib.LMTP(%q, %s), smtplib.LMTP(%q)):
    refused = conn.sendmail("s@example.org", [%q, "nobody@example.com"],
        b"Message-ID: <py-%%d@test>\r\nSubject: py\r\n\r\nfrom python\r\n" %% id(conn))
    assert list(refused) == ["nobody@example.com"], refused
    assert refused["nobody@example.com"][0] == 550, refused
    conn.quit()
print("python LMTP OK")
`, host, port, sock, userName(3))
	if out, err := exec.Command("python3", "-c", script).CombinedOutput(); err != nil || !strings.Contains(string(out), "python LMTP OK") {
		t.Fatalf("python3: %v\n%s", err, out)
	}
}

// TestLMTPLookups: recipients are looked up in the passdb (LDAP here,
// Dovecot's LMTP proxy way): an unknown one gets 550 5.1.1 from the gateway
// itself, a directory outage 451 4.3.0 (never 5xx), mailHost pins.
func TestLMTPLookups(t *testing.T) {
	s := startSlapd(t)
	e := startBackendsWith(t, []string{"127.0.0.11", "127.0.0.12"}, seedUsers())
	file := ldapConfExt(t, s, "dovecot-ldap.conf.ext", "")
	e.startLMTPGateway(t, fmt.Sprintf("  - {driver: ldap, args: %q}\n", file), "")
	c := dialLMTP(t, e.gwAddr, "")
	defer c.close()
	c.cmd("LHLO mta")
	pinned := seedUser(37) // mailHost 127.0.0.12
	rr, data := c.deliver("s@example.org", []string{"nobody@example.com", seedUser(1), pinned}, message("ldap-1@test", "x"))
	if !strings.HasPrefix(rr[0], "550 5.1.1") || !strings.HasPrefix(rr[1], "250") || !strings.HasPrefix(rr[2], "250") {
		t.Fatalf("RCPT replies %v", rr)
	}
	if len(data) != 2 || !strings.HasPrefix(data[0], "250") || !strings.HasPrefix(data[1], "250") {
		t.Fatalf("DATA replies %v", data)
	}
	if !savedOn(e.backendByIP("127.0.0.12"), pinned) {
		t.Fatalf("%s not delivered on its mailHost", pinned)
	}
	s.Stop()
	rr, _ = c.deliver("s@example.org", []string{seedUser(2)}, message("ldap-2@test", "x"))
	if !strings.HasPrefix(rr[0], "451 4.3.0") {
		t.Fatalf("directory down: %v", rr)
	}
}

// TestLMTPStartTLS: an MTA that insists on TLS gets STARTTLS on TCP LMTP
// (Python's smtplib here).
func TestLMTPStartTLS(t *testing.T) {
	requireTools(t, "python3")
	e := startBackends(t, []string{"127.0.0.11"}, 3)
	cert, key, err := harness.WriteSelfSignedCert(e.dir, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	port, _ := harness.FreePort("127.0.0.1")
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: lmtp, address: %q}\n", e.gwAddr), staticPassdb("proxy=y nopassword=y"),
		fmt.Sprintf("tls: {cert: %q, key: %q}\n", cert, key))
	// smtplib's LMTP class greets with LHLO (its ehlo_msg).
	script := fmt.Sprintf(`
import smtplib, ssl
conn = smtplib.LMTP("127.0.0.1", %d)
conn.ehlo()
assert conn.has_extn("starttls"), conn.esmtp_features
ctx = ssl.create_default_context(cafile=%q)
ctx.check_hostname = False
conn.starttls(context=ctx)
conn.ehlo()
assert not conn.has_extn("starttls"), "STARTTLS offered again inside TLS"
refused = conn.sendmail("s@example.org", [%q], b"Message-ID: <lmtptls-1@test>\r\n\r\nover TLS\r\n")
assert not refused, refused
print("LMTP STARTTLS OK", conn.sock.version())
`, port, cert, userName(1))
	out, err := exec.Command("python3", "-c", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "LMTP STARTTLS OK") {
		t.Fatalf("python3: %v\n%s", err, out)
	}
	if e.delivered(t, userName(1), "lmtptls-1@test") != 1 {
		t.Fatal("not delivered")
	}
}
