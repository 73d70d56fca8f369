// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/gateway/sieve"
	"github.com/maildirector/maildirector/integration/harness"
)

// sieveClient is a minimal ManageSieve client for transcripts (RFC 5804).
type sieveClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	caps map[string]string // the greeting's capabilities
}

// dialSieve connects to addr from the loopback address from ("" for any)
// and reads the capability greeting.
func dialSieve(t testing.TB, addr, from string) *sieveClient {
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
	c := &sieveClient{t: t, conn: conn, r: bufio.NewReaderSize(conn, 64*1024), caps: map[string]string{}}
	data, st := c.response()
	if !strings.HasPrefix(st, "OK") {
		t.Fatalf("greeting ends with %q", st)
	}
	capRE := regexp.MustCompile(`^"([^"]+)"(?: "([^"]*)")?$`)
	for _, l := range data {
		m := capRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("greeting line %q", l)
		}
		c.caps[m[1]] = m[2]
	}
	return c
}

func (c *sieveClient) close() { c.conn.Close() }

func (c *sieveClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s+"\r\n"); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// response reads data lines up to the OK, NO or BYE that ends a reply. A
// line ending in a literal {n} comes with the literal's bytes.
func (c *sieveClient) response() (data []string, status string) {
	c.t.Helper()
	litRE := regexp.MustCompile(`\{(\d+)\}$`)
	for {
		s, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (got %q)", err, s)
		}
		l := strings.TrimSuffix(s, "\r\n")
		for {
			m := litRE.FindStringSubmatch(l)
			if m == nil {
				break
			}
			n, _ := strconv.Atoi(m[1])
			buf := make([]byte, n)
			if _, err := io.ReadFull(c.r, buf); err != nil {
				c.t.Fatal(err)
			}
			rest, _ := c.r.ReadString('\n')
			l += "\r\n" + string(buf) + strings.TrimSuffix(rest, "\r\n")
		}
		for _, st := range []string{"OK", "NO", "BYE"} {
			if l == st || strings.HasPrefix(l, st+" ") {
				return data, l
			}
		}
		data = append(data, l)
	}
}

// do sends a command and returns the data lines and the status line.
func (c *sieveClient) do(cmd string) ([]string, string) {
	c.t.Helper()
	c.send(cmd)
	return c.response()
}

func (c *sieveClient) ok(cmd string) []string {
	c.t.Helper()
	data, st := c.do(cmd)
	if !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("%s: %s", cmd, st)
	}
	return data
}

func (c *sieveClient) authPlain(user, pass string) string {
	c.t.Helper()
	_, st := c.do(`AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+pass)) + `"`)
	return st
}

// sieveLiteral is s as a client literal (RFC 5804 literal-c2s).
func sieveLiteral(s string) string { return "{" + strconv.Itoa(len(s)) + "+}\r\n" + s }

// startSieveGateway runs the gateway with one ManageSieve listener on
// 127.0.0.1 and points e.gwAddr at it.
func (e *env) startSieveGateway(t *testing.T, passdbArgs, extra string) {
	t.Helper()
	port, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: sieve, address: %q}\n", e.gwAddr), passdbArgs, extra)
}

// sieveLogins counts user's ManageSieve logins in b's log from client
// address rip, waiting a little for Dovecot's log process.
func sieveLogins(b *harness.Dovecot, user, rip string) int {
	re := regexp.MustCompile(`managesieve-login: Info: Login: user=<` + regexp.QuoteMeta(user) + `>, method=PLAIN, rip=` +
		regexp.QuoteMeta(rip) + `,`)
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := len(re.FindAllString(b.Log(), -1))
		if n > 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sieveScript is a script that uses extensions from the SIEVE list, with
// CRLF line ends and 8-bit text, as clients upload them.
const sieveScript = "require [\"fileinto\", \"vacation\"];\r\n" +
	"# Grüße aus dem Test\r\n" +
	"if header :contains \"subject\" \"spam\" {\r\n  fileinto \"Junk\";\r\n  stop;\r\n}\r\n" +
	"vacation :days 3 \"Away.\";\r\n"

// TestSieveThroughGateway: a ManageSieve session through the gateway to
// the user's ring backend: the greeting announces the backends' SIEVE
// extensions, the script lands in the user's home on the shared mail
// root, comes back byte for byte, and the backend logs the real client
// address and the gateway's session id (XCLIENT).
func TestSieveThroughGateway(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 8)
	e.startSieveGateway(t, "proxy=y nopassword=y", trusted)
	u := e.findUser(t, "127.0.0.12")
	ring, other := e.backendByIP("127.0.0.12"), e.backendByIP("127.0.0.11")

	// What a real backend announces is what the gateway announces.
	direct := dialSieve(t, ring.SieveAddr(), "")
	direct.close()
	if _, ok := direct.caps["XCLIENT"]; !ok {
		t.Fatalf("the backend does not offer XCLIENT to a trusted client: %v", direct.caps)
	}
	c := dialSieve(t, e.gwAddr, "127.0.0.55")
	defer c.close()
	if c.caps["IMPLEMENTATION"] != "maildirector" || c.caps["SASL"] != "PLAIN LOGIN" || c.caps["VERSION"] != "1.0" ||
		c.caps["NOTIFY"] != direct.caps["NOTIFY"] {
		t.Fatalf("gateway capabilities %v", c.caps)
	}
	if c.caps["SIEVE"] != direct.caps["SIEVE"] || c.caps["SIEVE"] != sieve.DefaultExtensions {
		t.Fatalf("SIEVE capability:\n gateway %q\n backend %q\n default %q", c.caps["SIEVE"], direct.caps["SIEVE"], sieve.DefaultExtensions)
	}

	if st := c.authPlain(u, password(u)); st != `OK "Logged in."` {
		t.Fatalf("login: %s", st)
	}
	c.ok(`PUTSCRIPT "vacation" ` + sieveLiteral(sieveScript))
	if data := c.ok("LISTSCRIPTS"); len(data) != 1 || data[0] != `"vacation"` {
		t.Fatalf("LISTSCRIPTS: %q", data)
	}
	c.ok(`SETACTIVE "vacation"`)
	if data := c.ok("LISTSCRIPTS"); len(data) != 1 || data[0] != `"vacation" ACTIVE` {
		t.Fatalf("LISTSCRIPTS after SETACTIVE: %q", data)
	}
	data := c.ok(`GETSCRIPT "vacation"`)
	want := "{" + strconv.Itoa(len(sieveScript)) + "}\r\n" + sieveScript
	if len(data) != 1 || data[0] != want {
		t.Fatalf("GETSCRIPT returned %q, want %q", data, want)
	}
	c.ok(`NOOP "through the relay"`)
	if _, st := c.do("LOGOUT"); !strings.HasPrefix(st, "OK") {
		t.Fatalf("LOGOUT: %s", st)
	}

	// Dovecot's sieve = file:~/sieve;active=~/.dovecot.sieve, home on the
	// shared mail root.
	home := filepath.Join(ring.Opts.MailRoot, u)
	stored, err := os.ReadFile(filepath.Join(home, "sieve", "vacation.sieve"))
	if err != nil || string(stored) != sieveScript {
		t.Fatalf("stored script %q, %v", stored, err)
	}
	if target, err := os.Readlink(filepath.Join(home, ".dovecot.sieve")); err != nil || target != "sieve/vacation.sieve" {
		t.Fatalf("active script link %q, %v", target, err)
	}

	// The user reached its ring backend only, with its real address.
	if n := sieveLogins(ring, u, "127.0.0.55"); n != 1 {
		t.Fatalf("%d ManageSieve logins from 127.0.0.55 on %s:\n%s", n, ring.Opts.IP, lastLines(ring.Log(), 5))
	}
	if n := sieveLogins(other, u, "127.0.0.55"); n != 0 {
		t.Fatalf("the user reached %s too", other.Opts.IP)
	}
	m := regexp.MustCompile(`msg=login session=(\S+) service=sieve remote=127\.0\.0\.55:`).FindStringSubmatch(e.gw.Log())
	if m == nil || !logHas(ring, "session=<"+m[1]+">") {
		t.Fatalf("the gateway's session id (%v) is not in the backend's log:\n%s", m, lastLines(ring.Log(), 5))
	}
}

// TestSieveLoginFailures: a wrong password reads as one; a dead backend
// as "try later", never as a wrong password.
func TestSieveLoginFailures(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, 8)
	e.backendTimeout = "2s"
	e.startSieveGateway(t, "proxy=y nopassword=y", trusted)

	t.Run("wrong password", func(t *testing.T) {
		u := e.findUser(t, "127.0.0.11")
		c := dialSieve(t, e.gwAddr, "127.0.3.21")
		defer c.close()
		if st := c.authPlain(u, "wrong"); st != `NO "Authentication failed."` {
			t.Fatalf("got %q", st)
		}
		c.ok("NOOP")
	})

	t.Run("backend down", func(t *testing.T) {
		down := e.backendByIP("127.0.0.12")
		u := e.findUser(t, "127.0.0.12")
		other := e.findUser(t, "127.0.0.11")
		down.Kill()
		c := dialSieve(t, e.gwAddr, "")
		defer c.close()
		if st := c.authPlain(u, password(u)); st != `NO (TRYLATER) "Temporary authentication failure."` {
			t.Fatalf("got %q", st)
		}
		// Users of the other backend are unaffected.
		if st := c.authPlain(other, password(other)); !strings.HasPrefix(st, "OK") {
			t.Fatalf("user on the live backend: %q", st)
		}
		c.ok("LISTSCRIPTS")
	})
}

// TestSieveConnect: sieve-connect, a client not written here, uploads,
// activates, lists and downloads a script through the gateway, over
// STARTTLS with a throwaway certificate (it verifies it against
// --tlscafile, resynchronises with a NOOP tag) and over cleartext
// (--clearchan). The password comes on a file descriptor (--passwordfd).
func TestSieveConnect(t *testing.T) {
	requireTools(t, "sieve-connect")
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
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: sieve, address: %q}\n  - {protocol: managesieve, address: \"127.0.0.1:%d\", tls: none}\n", e.gwAddr, ports[1]),
		"proxy=y nopassword=y", fmt.Sprintf("tls: {cert: %q, key: %q}\n", cert, key))
	u := userName(1)
	script := filepath.Join(e.dir, "filter.sieve")
	if err := os.WriteFile(script, []byte(sieveScript), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(pass string, port int, args ...string) (string, error) {
		base := []string{"--nosrv", "--server", "127.0.0.1", "--port", strconv.Itoa(port), "--user", u, "--passwordfd", "0"}
		if port == ports[0] {
			base = append(base, "--tlscafile", cert)
		} else {
			base = append(base, "--clearchan")
		}
		cmd := exec.Command("sieve-connect", append(base, args...)...)
		cmd.Stdin = strings.NewReader(pass + "\n")
		cmd.WaitDelay = 30 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(port int, args ...string) string {
		t.Helper()
		out, err := run(password(u), port, args...)
		if err != nil {
			t.Fatalf("sieve-connect %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	must(ports[0], "--upload", "--localsieve", script, "--remotesieve", "filter")
	must(ports[0], "--activate", "--remotesieve", "filter")
	if out := must(ports[1], "--list"); !strings.Contains(out, `"filter" ACTIVE`) {
		t.Fatalf("--list: %q", out)
	}
	back := filepath.Join(e.dir, "back.sieve")
	must(ports[0], "--download", "--remotesieve", "filter", "--localsieve", back)
	if got, err := os.ReadFile(back); err != nil || string(got) != sieveScript {
		t.Fatalf("downloaded %q, %v", got, err)
	}
	if out, err := run("wrong", ports[0], "--list"); err == nil {
		t.Fatalf("a wrong password listed scripts:\n%s", out)
	}
	// Four logins, all on the user's ring backend.
	ring := e.backendByIP(e.ringBackend(u))
	if n := sieveLogins(ring, u, "127.0.0.1"); n != 4 {
		t.Fatalf("%d ManageSieve logins on the ring backend %s, want 4", n, ring.Opts.IP)
	}
}
