// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

const trusted = "trusted_networks: [127.0.0.0/8]\n"

// findUser returns a test user the ring places on ip.
func (e *env) findUser(t *testing.T, ip string) string {
	t.Helper()
	for i := 0; i < len(e.users); i++ {
		if e.ringBackend(userName(i)) == ip {
			return userName(i)
		}
	}
	t.Fatalf("no test user on %s", ip)
	return ""
}

// loggedIn reports how often user logged in on backend b, by its log.
// Dovecot writes its log through a log process, a moment after the login
// itself, so a count of 0 is only believed after a short wait.
func loggedIn(b *harness.Dovecot, user string) int {
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := strings.Count(b.Log(), "Login: user=<"+user+">")
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logHas reports whether b's log contains all of subs, waiting a little
// for Dovecot's log process.
func logHas(b *harness.Dovecot, subs ...string) bool {
	deadline := time.Now().Add(3 * time.Second)
	for {
		all := true
		log := b.Log()
		for _, s := range subs {
			all = all && strings.Contains(log, s)
		}
		if all || time.Now().After(deadline) {
			return all
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBigAppendAndFetch sends a 10 MB message through the relay and reads
// it back byte for byte.
func TestBigAppendAndFetch(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	e.startGateway(t, "proxy=y nopassword=y", trusted)
	u := userName(1)
	c := dial(t, e.gwAddr, "")
	defer c.close()
	if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK") {
		t.Fatal(st)
	}
	c.ok("SELECT INBOX")
	// 10 MB of base64 text in 76-column lines: a valid message body.
	raw := make([]byte, 7_500_000)
	rand.Read(raw)
	b64 := base64.StdEncoding.EncodeToString(raw)
	var msg bytes.Buffer
	msg.WriteString("From: big@example.com\r\nSubject: big\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(b64) > 0 {
		n := min(76, len(b64))
		msg.WriteString(b64[:n])
		msg.WriteString("\r\n")
		b64 = b64[n:]
	}
	if msg.Len() < 10_000_000 {
		t.Fatalf("message is only %d bytes", msg.Len())
	}
	start := time.Now()
	if st := c.appendMsg(msg.Bytes()); !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND: %s", st)
	}
	c.ok("NOOP")
	got := c.fetchBody(1)
	t.Logf("%d-byte APPEND + FETCH through the gateway took %v", msg.Len(), time.Since(start).Round(time.Millisecond))
	if !bytes.Equal(got, msg.Bytes()) {
		t.Fatalf("FETCH returned %d bytes that differ from the %d appended", len(got), msg.Len())
	}
	c.ok("LOGOUT")
}

// TestIdleThroughTheRelay: a client in IDLE hears about a message another
// session appends.
func TestIdleThroughTheRelay(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	e.startGateway(t, "proxy=y nopassword=y", trusted)
	u := userName(2)
	idler := dial(t, e.gwAddr, "")
	defer idler.close()
	if st := idler.login(u, password(u)); !strings.HasPrefix(st, "OK") {
		t.Fatal(st)
	}
	idler.ok("SELECT INBOX")
	idler.send("idle1 IDLE")
	if l := idler.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	other := dial(t, e.gwAddr, "")
	defer other.close()
	if st := other.login(u, password(u)); !strings.HasPrefix(st, "OK") {
		t.Fatal(st)
	}
	if st := other.appendMsg([]byte("Subject: ping\r\n\r\nping\r\n")); !strings.HasPrefix(st, "OK") {
		t.Fatal(st)
	}
	// Dovecot notices the new message within its IDLE check interval.
	for {
		l := idler.line()
		if l == "* 1 EXISTS" {
			break
		}
	}
	idler.send("DONE")
	if _, st := idler.readUntil("idle1"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("IDLE end: %s", st)
	}
	// Both sessions were on the user's one backend.
	want := e.backendByIP(e.ringBackend(u))
	if n := loggedIn(want, u); n != 2 {
		t.Fatalf("%d logins on %s, want 2", n, want.Opts.IP)
	}
}

// TestLoginFailures: each kind of failure gets its own IMAP response code.
func TestLoginFailures(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}, 12)
	e.backendTimeout = "2s"
	e.startGateway(t, "proxy=y nopassword=y", trusted)

	// Dovecot's own auth penalty (per client IP, which the gateway
	// forwards) delays repeated failures by seconds, so each failing
	// attempt comes from its own address.
	t.Run("wrong password is AUTHENTICATIONFAILED", func(t *testing.T) {
		u := userName(0)
		c := dial(t, e.gwAddr, "127.0.3.1")
		defer c.close()
		if st := c.login(u, "wrong"); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Fatalf("got %q", st)
		}
		c2 := dial(t, e.gwAddr, "127.0.3.2")
		defer c2.close()
		if st := c2.authPlain("", u, "wrong"); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Fatalf("AUTHENTICATE: got %q", st)
		}
		// The gateway connection stays usable. (A right password from
		// this address would now wait out Dovecot's penalty, longer than
		// this test's 2 s backend timeout.)
		c2.ok("NOOP")
	})

	t.Run("backend down is UNAVAILABLE", func(t *testing.T) {
		down := e.backendByIP("127.0.0.12")
		u := e.findUser(t, "127.0.0.12")
		other := e.findUser(t, "127.0.0.11")
		down.Kill()
		c := dial(t, e.gwAddr, "")
		defer c.close()
		start := time.Now()
		st := c.login(u, password(u))
		t.Logf("login to a dead backend answered in %v", time.Since(start).Round(time.Millisecond))
		if st != "NO [UNAVAILABLE] Temporary authentication failure." {
			t.Fatalf("got %q", st)
		}
		// Users of the other backend are unaffected.
		if st := c.login(other, password(other)); !strings.HasPrefix(st, "OK") {
			t.Fatalf("user on the live backend: %q", st)
		}
	})

	t.Run("frozen backend is UNAVAILABLE within the timeout", func(t *testing.T) {
		frozen := e.backendByIP("127.0.0.13")
		u := e.findUser(t, "127.0.0.13")
		frozen.Freeze()
		defer frozen.Thaw()
		c := dial(t, e.gwAddr, "")
		defer c.close()
		start := time.Now()
		st := c.login(u, password(u))
		t.Logf("login to a frozen backend answered in %v (backend.timeout 2s)", time.Since(start).Round(time.Millisecond))
		if st != "NO [UNAVAILABLE] Temporary authentication failure." {
			t.Fatalf("got %q", st)
		}
	})
}

// TestMasterUserLogin: the passdb's master and pass fields make the gateway
// log in on the backend as master user, whatever the client's password.
func TestMasterUserLogin(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	e.startGateway(t, fmt.Sprintf("proxy=y password=gatewaypw master=%s pass=%s", harness.MasterUser, harness.MasterPassword), trusted)
	u := userName(3)
	c := dial(t, e.gwAddr, "")
	defer c.close()
	if st := c.login(u, "wrong"); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Fatalf("the gateway's own passdb must still check the password: %q", st)
	}
	if n := loggedIn(e.backendByIP(e.ringBackend(u)), u); n != 0 {
		t.Fatalf("a refused login reached the backend")
	}
	if st := c.login(u, "gatewaypw"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("master login: %q", st)
	}
	c.ok("SELECT INBOX")
	b := e.backendByIP(e.ringBackend(u))
	if !logHas(b, "Login: user=<"+u+">", "master") {
		t.Fatalf("backend %s did not log a master login for %s:\n%s", b.Opts.IP, u, lastLines(b.Log(), 5))
	}
}

// TestClientMasterUserLogin: a client that logs in with SASL PLAIN as
// master user (authzid = the user) is logged in the same way on the
// backend, routed by the user it acts for. As in Dovecot, the gateway
// needs a master passdb for that; this one accepts any password and lets
// the backend check it ("static nopassword master pass=yes").
func TestClientMasterUserLogin(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	e.startGateway(t, "  - {driver: static, args: nopassword, master: true, pass: true}\n"+staticPassdb("proxy=y nopassword=y"), trusted)
	u := e.findUser(t, "127.0.0.12")
	bad := dial(t, e.gwAddr, "127.0.3.3")
	defer bad.close()
	if st := bad.authPlain(u, harness.MasterUser, "wrong"); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
		t.Fatalf("wrong master password: %q", st)
	}
	c := dial(t, e.gwAddr, "")
	defer c.close()
	if st := c.authPlain(u, harness.MasterUser, harness.MasterPassword); !strings.HasPrefix(st, "OK") {
		t.Fatalf("master login: %q", st)
	}
	if n := loggedIn(e.backendByIP("127.0.0.12"), u); n != 1 {
		t.Fatalf("%d logins for %s on its ring backend", n, u)
	}
}

// TestPinnedHostWins: a host field from the passdb beats the ring.
func TestPinnedHostWins(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 8)
	e.startGateway(t, "proxy=y nopassword=y host=127.0.0.12", trusted)
	u := e.findUser(t, "127.0.0.11")
	c := dial(t, e.gwAddr, "")
	defer c.close()
	if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK") {
		t.Fatal(st)
	}
	if n := loggedIn(e.backendByIP("127.0.0.12"), u); n != 1 {
		t.Fatalf("pinned user not on 127.0.0.12 (%d logins)", n)
	}
	if n := loggedIn(e.backendByIP("127.0.0.11"), u); n != 0 {
		t.Fatalf("pinned user reached its ring backend too")
	}
}

// TestPythonImaplib: a client not written here logs in (LOGIN and
// AUTHENTICATE PLAIN), selects, appends and fetches through the gateway.
func TestPythonImaplib(t *testing.T) {
	requireTools(t, "python3")
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	e.startGateway(t, "proxy=y nopassword=y", trusted)
	host, port, _ := strings.Cut(e.gwAddr, ":")
	u := userName(1)
	script := fmt.Sprintf(`
import imaplib, sys
m = imaplib.IMAP4(%q, %s)
typ, data = m.login(%q, %q)
assert typ == "OK", data
typ, data = m.select("INBOX")
assert typ == "OK", data
typ, data = m.append("INBOX", None, None, b"Subject: from python\r\n\r\nhello\r\n")
assert typ == "OK", data
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"from python" in data[0][1], data
m.logout()
m = imaplib.IMAP4(%q, %s)
typ, data = m.authenticate("PLAIN", lambda _: b"\0" + %q.encode() + b"\0" + %q.encode())
assert typ == "OK", data
m.logout()
try:
    m = imaplib.IMAP4(%q, %s)
    m.login(%q, "wrong")
    sys.exit("wrong password accepted")
except imaplib.IMAP4.error as err:
    assert "AUTHENTICATIONFAILED" in str(err), err
print("python imaplib OK")
`, host, port, u, password(u), host, port, u, password(u), host, port, u)
	out, err := exec.Command("python3", "-c", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "python imaplib OK") {
		t.Fatalf("python3: %v\n%s", err, out)
	}
}

// TestCurl: curl's IMAP client lists the mailbox through the gateway.
func TestCurl(t *testing.T) {
	requireTools(t, "curl")
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	e.startGateway(t, "proxy=y nopassword=y", trusted)
	u := userName(2)
	out, err := exec.Command("curl", "-sS", "--max-time", "20", "--url", "imap://"+e.gwAddr+"/INBOX",
		"--user", u+":"+password(u), "-X", "EXAMINE INBOX").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "UIDVALIDITY") {
		t.Fatalf("curl: %v\n%s", err, out)
	}
	out, err = exec.Command("curl", "-sS", "--max-time", "20", "--url", "imap://"+e.gwAddr+"/INBOX",
		"--user", u+":wrong", "-X", "EXAMINE INBOX").CombinedOutput()
	if err == nil {
		t.Fatalf("curl with a wrong password succeeded:\n%s", out)
	}
}

// TestPassdbPortIsObeyed: a passdb port field beats backend.ports (the
// memo's open question), for IMAP and LMTP.
func TestPassdbPortIsObeyed(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	realIMAP, realLMTP := e.port, e.lmtpPort
	dead, _ := harness.FreePort("127.0.0.11", "127.0.0.12")
	e.port, e.lmtpPort = dead, dead // nothing listens there
	u := userName(1)

	e.startGateway(t, "proxy=y nopassword=y", trusted)
	c := dial(t, e.gwAddr, "")
	if st := c.login(u, password(u)); !strings.HasPrefix(st, "NO [UNAVAILABLE]") {
		t.Fatalf("without port=: %s", st)
	}
	c.close()

	e.startGateway(t, fmt.Sprintf("proxy=y nopassword=y port=%d", realIMAP), trusted)
	c = dial(t, e.gwAddr, "")
	if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK") {
		t.Fatalf("with port=%d: %s", realIMAP, st)
	}
	c.close()

	e.startLMTPGateway(t, staticPassdb(fmt.Sprintf("proxy=y nopassword=y port=%d", realLMTP)), "")
	l := dialLMTP(t, e.gwAddr, "")
	defer l.close()
	l.cmd("LHLO mta")
	if rr, data := l.deliver("s@example.org", []string{u}, message("port-1@test", "x")); !strings.HasPrefix(rr[0], "250") || len(data) != 1 || !strings.HasPrefix(data[0], "250") {
		t.Fatalf("LMTP with port=%d: %v %v", realLMTP, rr, data)
	}
}

// TestPenalty: a burst of wrong passwords from one address slows that
// address (the gateway logs each wait), not another; each failure is
// logged in one fixed shape for fail2ban. Default limits, no trusted
// networks.
func TestPenalty(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11"}, 4)
	e.limits = "{auth_failure_delay: 0s, auth_penalty_max: 4s}"
	e.startGateway(t, "proxy=y password=right", "allow_plaintext: true\n")
	u := userName(1)
	c := dial(t, e.gwAddr, "127.0.7.1")
	for i := 0; i < 3; i++ {
		if st := c.login(u, "wrong"); st != "NO [AUTHENTICATIONFAILED] Authentication failed." {
			t.Fatalf("attempt %d: %s", i, st)
		}
	}
	c.close()
	other := dial(t, e.gwAddr, "127.0.7.2")
	if st := other.login(u, "wrong"); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
		t.Fatal(st)
	}
	other.close()
	log := e.gw.Log()
	waits := regexp.MustCompile(`msg="auth penalty" .*rip=127\.0\.7\.1 wait=(\S+)`).FindAllStringSubmatch(log, -1)
	if len(waits) != 2 || waits[0][1] != "2s" || waits[1][1] != "4s" {
		t.Errorf("penalties for 127.0.7.1: %v, want waits of 2s then 4s", waits)
	}
	if strings.Contains(log, `msg="auth penalty" service=imap`) && regexp.MustCompile(`msg="auth penalty" .*rip=127\.0\.7\.2`).MatchString(log) {
		t.Error("another address was penalized")
	}
	fails := regexp.MustCompile(`msg="authentication failed" service=imap session=\S+ user=`+regexp.QuoteMeta(u)+` rip=(127\.0\.7\.[12]) reason="password mismatch"`).FindAllStringSubmatch(log, -1)
	if len(fails) != 4 {
		t.Errorf("%d fail2ban lines, want 4:\n%s", len(fails), lastLines(log, 12))
	}
}
