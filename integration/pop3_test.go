// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// pop3Client is a minimal POP3 client for transcripts.
type pop3Client struct {
	t        testing.TB
	conn     net.Conn
	r        *bufio.Reader
	greeting string
}

// dialPOP3 connects to addr from the loopback address from ("" for any)
// and reads the greeting.
func dialPOP3(t testing.TB, addr, from string) *pop3Client {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c := &pop3Client{t: t, conn: conn, r: bufio.NewReaderSize(conn, 64*1024)}
	if c.greeting = c.line(); !strings.HasPrefix(c.greeting, "+OK") {
		t.Fatalf("greeting %q", c.greeting)
	}
	return c
}

func (c *pop3Client) close() { c.conn.Close() }

func (c *pop3Client) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

// cmd sends a command and returns its status line.
func (c *pop3Client) cmd(format string, args ...any) string {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.conn, format+"\r\n", args...); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return c.line()
}

// multi runs a command with a multi-line answer (RFC 1939 3) and returns
// its body, dot-unstuffed, with CRLF line ends.
func (c *pop3Client) multi(format string, args ...any) []byte {
	c.t.Helper()
	if st := c.cmd(format, args...); !strings.HasPrefix(st, "+OK") {
		c.t.Fatalf("%s: %s", fmt.Sprintf(format, args...), st)
	}
	var body bytes.Buffer
	for {
		l := c.line()
		if l == "." {
			return body.Bytes()
		}
		body.WriteString(strings.TrimPrefix(l, "."))
		body.WriteString("\r\n")
	}
}

func (c *pop3Client) login(user, pass string) string {
	c.t.Helper()
	if st := c.cmd("USER %s", user); st != "+OK" {
		return st
	}
	return c.cmd("PASS %s", pass)
}

func (c *pop3Client) authPlain(authz, user, pass string) string {
	c.t.Helper()
	return c.cmd("AUTH PLAIN %s", base64.StdEncoding.EncodeToString([]byte(authz+"\x00"+user+"\x00"+pass)))
}

// startPOP3Gateway runs the gateway with one cleartext POP3 listener on
// e.gwAddr.
func (e *env) startPOP3Gateway(t testing.TB, passdbArgs, extra string) {
	t.Helper()
	port, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: pop3, address: %q}\n", e.gwAddr), passdbArgs, extra)
}

// pop3Message is a test message in CRLF form with a line POP3 must
// dot-stuff.
func pop3Message(subject string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: sender@example.org\r\nTo: someone@example.com\r\nSubject: %s\r\n\r\n", subject)
	for i := 0; i < 200; i++ {
		fmt.Fprintf(&b, "line %03d of %s\r\n", i, subject)
	}
	b.WriteString(".a line that starts with a dot\r\n..and one with two\r\nend\r\n")
	return b.Bytes()
}

// appendDirect puts msg into user's INBOX with IMAP APPEND straight on
// backend b, bypassing the gateway.
func appendDirect(t testing.TB, b *harness.Dovecot, user string, msg []byte) {
	t.Helper()
	c := dial(t, b.IMAPAddr(), "")
	defer c.close()
	if st := c.login(user, password(user)); !strings.HasPrefix(st, "OK") {
		t.Fatalf("direct IMAP login: %s", st)
	}
	if st := c.appendMsg(msg); !strings.HasPrefix(st, "OK") {
		t.Fatalf("APPEND: %s", st)
	}
	c.ok("LOGOUT")
}

// pop3Logins counts user's POP3 logins in b's log from client address
// rip, waiting a little for Dovecot's log process when there are none.
func pop3Logins(b *harness.Dovecot, user, rip string) int {
	re := regexp.MustCompile(`pop3-login: Info: Login: user=<` + regexp.QuoteMeta(user) + `>, .*rip=` + regexp.QuoteMeta(rip) + `,`)
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := len(re.FindAllString(b.Log(), -1))
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// otherBackend returns a backend of e other than ip.
func (e *env) otherBackend(ip string) *harness.Dovecot {
	for _, b := range e.backends {
		if b.Opts.IP != ip {
			return b
		}
	}
	return nil
}

// TestPOP3Session: USER/PASS and AUTH PLAIN through the gateway to a real
// Dovecot POP3 backend: the user lands on its ring backend, the backend
// sees the client's own address and the gateway's session id (XCLIENT),
// and STAT, LIST, UIDL, TOP, RETR (byte for byte), DELE and QUIT work
// through the relay.
func TestPOP3Session(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 6)
	e.startPOP3Gateway(t, "proxy=y nopassword=y", "allow_plaintext: true\n")
	u := e.findUser(t, "127.0.0.12")
	ring := e.backendByIP(e.ringBackend(u))
	msg := pop3Message("through the gateway")
	appendDirect(t, ring, u, msg)

	c := dialPOP3(t, e.gwAddr, "127.0.5.1")
	defer c.close()
	if c.greeting != "+OK maildirector ready." {
		t.Fatalf("greeting %q", c.greeting)
	}
	capa := string(c.multi("CAPA"))
	for _, want := range []string{"USER\r\n", "SASL PLAIN LOGIN\r\n", "PIPELINING\r\n", "RESP-CODES\r\n"} {
		if !strings.Contains(capa, want) {
			t.Fatalf("CAPA lacks %q:\n%s", want, capa)
		}
	}
	if st := c.login(u, password(u)); st != "+OK Logged in." {
		t.Fatalf("login: %q", st)
	}
	size := strconv.Itoa(len(msg))
	if st := c.cmd("STAT"); st != "+OK 1 "+size {
		t.Fatalf("STAT: %q, want 1 message of %s bytes", st, size)
	}
	if list := string(c.multi("LIST")); list != "1 "+size+"\r\n" {
		t.Fatalf("LIST: %q", list)
	}
	if uidl := string(c.multi("UIDL")); !strings.HasPrefix(uidl, "1 ") {
		t.Fatalf("UIDL: %q", uidl)
	}
	if top := c.multi("TOP 1 0"); !bytes.Equal(top, msg[:bytes.Index(msg, []byte("\r\n\r\n"))+4]) {
		t.Fatalf("TOP 1 0: %q", top)
	}
	if got := c.multi("RETR 1"); !bytes.Equal(got, msg) {
		t.Fatalf("RETR returned %d bytes that differ from the %d appended:\n%q", len(got), len(msg), got)
	}
	if st := c.cmd("DELE 1"); !strings.HasPrefix(st, "+OK") {
		t.Fatalf("DELE: %q", st)
	}
	if st := c.cmd("QUIT"); !strings.HasPrefix(st, "+OK") {
		t.Fatalf("QUIT: %q", st)
	}

	// RFC 2449 PIPELINING through the gateway: the login and the
	// commands after it in one write.
	c2 := dialPOP3(t, e.gwAddr, "127.0.5.2")
	defer c2.close()
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + u + "\x00" + password(u)))
	fmt.Fprintf(c2.conn, "AUTH PLAIN %s\r\nSTAT\r\nQUIT\r\n", ir)
	for _, want := range []string{"+OK Logged in.", "+OK 0 0", "+OK Logging out."} {
		if got := c2.line(); got != want {
			t.Fatalf("pipelined: got %q, want %q", got, want)
		}
	}

	other := e.otherBackend(ring.Opts.IP)
	for _, rip := range []string{"127.0.5.1", "127.0.5.2"} {
		if n := pop3Logins(ring, u, rip); n != 1 {
			t.Fatalf("%d POP3 logins from rip=%s on the ring backend %s:\n%s", n, rip, ring.Opts.IP, lastLines(ring.Log(), 10))
		}
		if n := pop3Logins(other, u, rip); n != 0 {
			t.Fatalf("POP3 login on %s, not the ring backend", other.Opts.IP)
		}
	}
	// The backend logs the gateway's session id (XCLIENT SESSION=).
	m := regexp.MustCompile(`msg=login session=(\S+) service=pop3 remote=127\.0\.5\.1:`).FindStringSubmatch(e.gw.Log())
	if m == nil {
		t.Fatalf("no pop3 login in the gateway log:\n%s", lastLines(e.gw.Log(), 10))
	}
	if !logHas(ring, "rip=127.0.5.1, lip="+ring.Opts.IP, "session=<"+m[1]+">") {
		t.Fatalf("backend log lacks session %s:\n%s", m[1], lastLines(ring.Log(), 10))
	}
}

// TestPOP3LoginFailures: a wrong password and a dead backend get their
// own response codes; neither reads like the other.
func TestPOP3LoginFailures(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 8)
	e.backendTimeout = "2s"
	e.startPOP3Gateway(t, "proxy=y nopassword=y", "allow_plaintext: true\n")

	// Dovecot's own auth penalty (per client IP, which XCLIENT forwards)
	// delays repeated failures by seconds, so each failing attempt comes
	// from its own address.
	t.Run("wrong password is AUTH", func(t *testing.T) {
		u := userName(0)
		c := dialPOP3(t, e.gwAddr, "127.0.6.1")
		defer c.close()
		if st := c.login(u, "wrong"); st != "-ERR [AUTH] Authentication failed." {
			t.Fatalf("USER/PASS: %q", st)
		}
		c2 := dialPOP3(t, e.gwAddr, "127.0.6.3")
		defer c2.close()
		if st := c2.authPlain("", u, "wrong"); st != "-ERR [AUTH] Authentication failed." {
			t.Fatalf("AUTH PLAIN: %q", st)
		}
		if st := c2.cmd("CAPA"); st != "+OK" {
			t.Fatalf("the session did not go on: %q", st)
		}
	})

	t.Run("backend down is SYS/TEMP", func(t *testing.T) {
		down := e.backendByIP("127.0.0.12")
		u := e.findUser(t, "127.0.0.12")
		other := e.findUser(t, "127.0.0.11")
		down.Kill()
		c := dialPOP3(t, e.gwAddr, "127.0.6.2")
		defer c.close()
		if st := c.login(u, password(u)); st != "-ERR [SYS/TEMP] Temporary authentication failure." {
			t.Fatalf("got %q", st)
		}
		// Users of the other backend are unaffected.
		if st := c.login(other, password(other)); st != "+OK Logged in." {
			t.Fatalf("user on the live backend: %q", st)
		}
	})
}

// setDovecot appends settings to backend b's configuration and reloads
// it, waiting until the new configuration is in use.
func setDovecot(t testing.TB, b *harness.Dovecot, settings string) {
	t.Helper()
	f, err := os.OpenFile(b.Conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n" + settings + "\n")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	reloads := strings.Count(b.Log(), "reloading configuration")
	if out, err := exec.Command("doveadm", "-c", b.Conf, "reload").CombinedOutput(); err != nil {
		t.Fatalf("doveadm reload: %v: %s", err, out)
	}
	for deadline := time.Now().Add(10 * time.Second); strings.Count(b.Log(), "reloading configuration") == reloads; {
		if time.Now().After(deadline) {
			t.Fatalf("dovecot did not reload:\n%s", lastLines(b.Log(), 5))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// New login and mail processes read the new configuration; give the
	// master a moment to replace the old ones.
	time.Sleep(500 * time.Millisecond)
}

// TestPOP3MailboxInUse: what Dovecot answers a second simultaneous POP3
// session of one user, through the relay. With its defaults (maildir,
// pop3_lock_session = no) both sessions get in. With pop3_lock_session =
// yes the second waits for the lock, then gets "-ERR [IN-USE] ...", which
// the gateway passes on unchanged: temporary, not a wrong password; the
// same client logs in once the first session has quit.
func TestPOP3MailboxInUse(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11"}, 2)
	// Dovecot waits up to 10 s for the POP3 session lock.
	e.backendTimeout = "30s"
	e.startPOP3Gateway(t, "proxy=y nopassword=y", "allow_plaintext: true\n")
	u := userName(1)
	b := e.backends[0]

	first := dialPOP3(t, e.gwAddr, "127.0.6.11")
	defer first.close()
	if st := first.login(u, password(u)); st != "+OK Logged in." {
		t.Fatal(st)
	}
	second := dialPOP3(t, e.gwAddr, "127.0.6.12")
	defer second.close()
	if st := second.login(u, password(u)); st != "+OK Logged in." {
		t.Fatalf("second session with Dovecot's defaults: %q", st)
	}
	first.cmd("QUIT")
	second.cmd("QUIT")

	setDovecot(t, b, "pop3_lock_session = yes")
	first = dialPOP3(t, e.gwAddr, "127.0.6.13")
	defer first.close()
	if st := first.login(u, password(u)); st != "+OK Logged in." {
		t.Fatal(st)
	}
	second = dialPOP3(t, e.gwAddr, "127.0.6.14")
	defer second.close()
	start := time.Now()
	st := second.login(u, password(u))
	t.Logf("the locked session was refused after %v", time.Since(start).Round(100*time.Millisecond))
	if st != "-ERR [IN-USE] Mailbox is locked by another POP3 session." {
		t.Fatalf("second session with pop3_lock_session: %q", st)
	}
	if st := first.cmd("QUIT"); !strings.HasPrefix(st, "+OK") {
		t.Fatal(st)
	}
	if st := second.login(u, password(u)); st != "+OK Logged in." {
		t.Fatalf("retry after the first session quit: %q", st)
	}
	if !logHas(b, "Couldn't lock POP3 session") {
		t.Fatalf("backend log:\n%s", lastLines(b.Log(), 10))
	}
}

// TestPOP3Poplib: Python's poplib through the gateway: USER/PASS, STAT,
// LIST, RETR, DELE; a wrong password's error carries [AUTH].
func TestPOP3Poplib(t *testing.T) {
	requireTools(t, "python3")
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	e.startPOP3Gateway(t, "proxy=y nopassword=y", trusted)
	u := userName(2)
	msg := pop3Message("from python")
	appendDirect(t, e.backendByIP(e.ringBackend(u)), u, msg)
	host, port, _ := strings.Cut(e.gwAddr, ":")
	script := fmt.Sprintf(`
import poplib, sys
m = poplib.POP3(%q, %s)
m.user(%q)
m.pass_(%q)
count, size = m.stat()
assert count == 1 and size == %d, (count, size)
resp, listing, _ = m.list()
assert listing == [b"1 %d"], listing
resp, lines, _ = m.retr(1)
assert b"\r\n".join(lines) + b"\r\n" == %s, lines
m.dele(1)
m.quit()
m = poplib.POP3(%q, %s)
m.user(%q)
m.pass_(%q)
assert m.stat() == (0, 0)
m.quit()
try:
    m = poplib.POP3(%q, %s)
    m.user(%q)
    m.pass_("wrong")
    sys.exit("wrong password accepted")
except poplib.error_proto as err:
    assert b"[AUTH]" in err.args[0], err
print("python poplib OK")
`, host, port, u, password(u), len(msg), len(msg), pyBytes(msg), host, port, u, password(u), host, port, u)
	out, err := exec.Command("python3", "-c", script).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "python poplib OK") {
		t.Fatalf("python3: %v\n%s", err, out)
	}
}

// pyBytes renders b as a Python bytes literal.
func pyBytes(b []byte) string {
	var s strings.Builder
	s.WriteString(`b"`)
	for _, c := range b {
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			s.WriteByte(c)
		} else {
			fmt.Fprintf(&s, `\x%02x`, c)
		}
	}
	s.WriteString(`"`)
	return s.String()
}

// TestPOP3Curl: curl's POP3 client lists and retrieves through the
// gateway; a wrong password fails.
func TestPOP3Curl(t *testing.T) {
	requireTools(t, "curl")
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	e.startPOP3Gateway(t, "proxy=y nopassword=y", trusted)
	u := userName(3)
	msg := pop3Message("from curl")
	appendDirect(t, e.backendByIP(e.ringBackend(u)), u, msg)
	out, err := exec.Command("curl", "-sS", "--max-time", "20", "--url", "pop3://"+e.gwAddr+"/",
		"--user", u+":"+password(u)).CombinedOutput()
	if err != nil || string(out) != fmt.Sprintf("1 %d\r\n", len(msg)) {
		t.Fatalf("curl LIST: %v\n%q", err, out)
	}
	out, err = exec.Command("curl", "-sS", "--max-time", "20", "--url", "pop3://"+e.gwAddr+"/1",
		"--user", u+":"+password(u)).Output()
	if err != nil || !bytes.Equal(out, msg) {
		t.Fatalf("curl RETR: %v\n%q", err, out)
	}
	out, err = exec.Command("curl", "-sS", "--max-time", "20", "--url", "pop3://"+e.gwAddr+"/",
		"--user", u+":wrong").CombinedOutput()
	if err == nil {
		t.Fatalf("curl with a wrong password succeeded:\n%s", out)
	}
}

// TestPOP3TLS runs a STLS listener and a pop3s listener without trusted
// networks: cleartext logins from another address are refused; TLS
// logins work (Go, Python's poplib, curl).
func TestPOP3TLS(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	cert, key, err := harness.WriteSelfSignedCert(e.dir, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ports := make([]int, 2)
	for i := range ports {
		if ports[i], err = harness.FreePort("127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(ports[0])
	pop3sAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: pop3, address: %q}\n  - {protocol: pop3s, address: %q}\n", e.gwAddr, pop3sAddr),
		"proxy=y nopassword=y", fmt.Sprintf("tls: {cert: %q, key: %q}\n", cert, key))
	u := userName(1)

	t.Run("cleartext from another address is refused", func(t *testing.T) {
		c := dialPOP3(t, e.gwAddr, "127.0.0.77")
		defer c.close()
		capa := string(c.multi("CAPA"))
		if !strings.Contains(capa, "STLS\r\n") || strings.Contains(capa, "USER\r\n") || strings.Contains(capa, "SASL") {
			t.Fatalf("capabilities %q", capa)
		}
		const refused = "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) connections."
		if st := c.cmd("USER %s", u); st != refused {
			t.Fatalf("USER: %q", st)
		}
		if st := c.authPlain("", u, password(u)); st != refused {
			t.Fatalf("AUTH PLAIN: %q", st)
		}
	})

	t.Run("Python poplib over pop3s and STLS", func(t *testing.T) {
		requireTools(t, "python3")
		script := fmt.Sprintf(`
import poplib, ssl
ctx = ssl.create_default_context(cafile=%q)
m = poplib.POP3_SSL("127.0.0.1", %d, context=ctx)
m.user(%q)
m.pass_(%q)
m.stat()
m.quit()
m = poplib.POP3("127.0.0.1", %d)
assert "STLS" in m.capa(), m.capa()
m.stls(context=ctx)
assert "USER" in m.capa(), m.capa()
m.user(%q)
m.pass_(%q)
m.stat()
m.quit()
print("python TLS OK")
`, cert, ports[1], u, password(u), ports[0], u, password(u))
		out, err := exec.Command("python3", "-c", script).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "python TLS OK") {
			t.Fatalf("python3: %v\n%s", err, out)
		}
	})

	t.Run("curl over pop3s", func(t *testing.T) {
		requireTools(t, "curl")
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "--cacert", cert,
			"--url", "pop3s://"+pop3sAddr+"/", "--user", u+":"+password(u)).CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
	})
}

// TestPOP3MasterUserLogin: the passdb's master and pass fields make the
// gateway log in on the backend with AUTH PLAIN as master user, whatever
// the client's password.
func TestPOP3MasterUserLogin(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 4)
	e.startPOP3Gateway(t, fmt.Sprintf("proxy=y password=gatewaypw master=%s pass=%s", harness.MasterUser, harness.MasterPassword), trusted)
	u := userName(3)
	b := e.backendByIP(e.ringBackend(u))
	c := dialPOP3(t, e.gwAddr, "127.0.6.21")
	defer c.close()
	if st := c.login(u, "wrong"); st != "-ERR [AUTH] Authentication failed." {
		t.Fatalf("the gateway's own passdb must still check the password: %q", st)
	}
	if st := c.login(u, "gatewaypw"); st != "+OK Logged in." {
		t.Fatalf("master login: %q", st)
	}
	if st := c.cmd("STAT"); !strings.HasPrefix(st, "+OK") {
		t.Fatal(st)
	}
	if n := pop3Logins(b, u, "127.0.6.21"); n != 1 || !logHas(b, "Master user logging in as "+u) {
		t.Fatalf("backend %s did not log one master login for %s:\n%s", b.Opts.IP, u, lastLines(b.Log(), 5))
	}
}

// TestPOP3BackendTLS: starttls=yes (STLS) and ssl=yes (the pop3s port)
// from the passdb protect the backend connection; a backend certificate
// that does not verify is an internal error ([SYS/PERM]) unless any-cert.
func TestPOP3BackendTLS(t *testing.T) {
	dir := testDir(t)
	ca, err := harness.NewCA(dir, "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	pop3s, err := harness.FreePort("127.0.0.11", "127.0.0.12")
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for i := 0; i < 20; i++ {
		users[userName(i)] = password(userName(i))
	}
	e := startBackendsWith(t, []string{"127.0.0.11", "127.0.0.12"}, users, func(o *harness.DovecotOptions) {
		var cert, key string
		var err error
		if o.IP == "127.0.0.11" {
			cert, key, err = ca.Issue(dir, "b11", "127.0.0.11")
		} else {
			sub := filepath.Join(dir, "selfsigned")
			os.MkdirAll(sub, 0o755)
			cert, key, err = harness.WriteSelfSignedCert(sub, "127.0.0.12")
		}
		if err != nil {
			t.Fatal(err)
		}
		o.SSLCert, o.SSLKey, o.POP3SPort = cert, key, pop3s
	})
	good, bad := e.findUser(t, "127.0.0.11"), e.findUser(t, "127.0.0.12")
	e.backendExtra = fmt.Sprintf("  tls_ca_file: %q\n", ca.CertFile)
	for _, tc := range []struct {
		fields, user, want string
	}{
		{"starttls=yes", good, "+OK Logged in."},
		{"starttls=yes", bad, "-ERR [SYS/PERM] Internal error occurred. Refer to server log for more information."},
		{"starttls=any-cert", bad, "+OK Logged in."},
		{"ssl=yes port=" + strconv.Itoa(pop3s), good, "+OK Logged in."},
	} {
		t.Run(tc.fields+" "+tc.user, func(t *testing.T) {
			e.startPOP3Gateway(t, "proxy=y nopassword=y "+tc.fields, trusted)
			c := dialPOP3(t, e.gwAddr, "127.0.6.31")
			defer c.close()
			if st := c.login(tc.user, password(tc.user)); st != tc.want {
				t.Fatalf("login: %q, want %q", st, tc.want)
			}
			if tc.want != "+OK Logged in." {
				return
			}
			if st := c.cmd("STAT"); !strings.HasPrefix(st, "+OK") {
				t.Fatal(st)
			}
			// The backend itself says the session is TLS, and still sees
			// the client's address (XCLIENT after STLS).
			b := e.backendByIP(e.ringBackend(tc.user))
			re := regexp.MustCompile(`pop3-login: Info: Login: user=<` + regexp.QuoteMeta(tc.user) + `>.*rip=127\.0\.6\.31, .*TLS`)
			if !waitMatch(b, re) {
				t.Fatalf("no TLS POP3 login from 127.0.6.31 in %s's log:\n%s", b.Opts.IP, lastLines(b.Log(), 5))
			}
		})
	}
}

// waitMatch reports whether b's log matches re, waiting a little for
// Dovecot's log process.
func waitMatch(b *harness.Dovecot, re *regexp.Regexp) bool {
	deadline := time.Now().Add(3 * time.Second)
	for !re.MatchString(b.Log()) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
