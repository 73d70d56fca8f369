// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// reloadEnv is a gateway with a cleartext IMAP listener, an imaps one,
// an LMTP one and the admin socket, whose configuration file the test
// rewrites and reloads.
type reloadEnv struct {
	*env
	plain, imaps, lmtp string
	sock               string
	// cert1 is the DER of the certificate the gateway starts with.
	cert1 []byte
}

func startReloadEnv(t *testing.T, ips []string, nUsers int) *reloadEnv {
	t.Helper()
	e := startBackends(t, ips, nUsers)
	addrs := freeLoopbackAddrs(t, 3)
	r := &reloadEnv{env: e, plain: addrs[0], imaps: addrs[1], lmtp: addrs[2], sock: filepath.Join(shortTempDir(t), "admin")}
	cert, key := writeCertIn(t, filepath.Join(e.dir, "c1"), "localhost")
	r.cert1 = pemCertDER(t, cert)
	e.gwAddr = r.plain
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: imap, address: %q}\n  - {protocol: imaps, address: %q}\n  - {protocol: lmtp, address: %q}\n", r.plain, r.imaps, r.lmtp),
		"proxy=y nopassword=y", fmt.Sprintf("tls: {cert: %q, key: %q}\nadmin:\n  socket: %s\nlog: {level: info}\n", cert, key, r.sock))
	return r
}

// freeLoopbackAddrs returns n distinct free addresses on 127.0.0.1.
func freeLoopbackAddrs(t testing.TB, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	var out []string
	for len(out) < n {
		port, err := harness.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		a := "127.0.0.1:" + strconv.Itoa(port)
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// writeCertIn writes a self-signed certificate named cn (and valid for
// 127.0.0.1) into its own directory: WriteSelfSignedCert's file names
// are fixed.
func writeCertIn(t testing.TB, dir, cn string) (cert, key string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cert, key, err := harness.WriteSelfSignedCert(dir, cn, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func pemCertDER(t testing.TB, file string) []byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", file)
	}
	return blk.Bytes
}

// leafCert returns the certificate a new TLS client of addr is shown.
func leafCert(t testing.TB, addr string) []byte {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// selectedSession logs user in over addr (implicit TLS when tlsOn) and
// selects INBOX.
func selectedSession(t testing.TB, addr string, tlsOn bool, user string) *client {
	t.Helper()
	var c *client
	if tlsOn {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("TLS dial %s: %v", addr, err)
		}
		c = wrapClient(t, conn)
	} else {
		c = dial(t, addr, "")
	}
	// The sessions outlive wrapClient's two minutes under -race.
	c.conn.SetDeadline(time.Now().Add(10 * time.Minute))
	if st := c.login(user, password(user)); !strings.HasPrefix(st, "OK") {
		c.close()
		t.Fatalf("login %s on %s: %s", user, addr, st)
	}
	c.ok("SELECT INBOX")
	return c
}

// rewriteConf edits the gateway's configuration file in place.
func rewriteConf(t testing.TB, gw *harness.Gateway, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(gw.Conf)
	if err != nil {
		t.Fatal(err)
	}
	after := edit(string(b))
	if after == string(b) {
		t.Fatal("rewriteConf: the edit changed nothing")
	}
	if err := os.WriteFile(gw.Conf, []byte(after), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replaceOnce replaces old, which must occur in s exactly once.
func replaceOnce(t testing.TB, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("configuration has %q %d times, want once", old, n)
	}
	return strings.Replace(s, old, new, 1)
}

// runReload runs `maildirector reload -c CONF` and returns its output
// and exit status.
func runReload(t testing.TB, gw *harness.Gateway) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gw.Bin, "reload", "-c", gw.Conf)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("maildirector reload: %v", err)
	}
	return out.String(), errb.String(), code
}

// hup sends SIGHUP to the gateway, waits for the reload's log lines
// (those holding msg and by=SIGHUP) and returns the new ones.
func hup(t testing.TB, gw *harness.Gateway, msg string) []string {
	t.Helper()
	before := len(logLinesWith(gw, msg, "by=SIGHUP"))
	if err := syscall.Kill(gw.Pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if l := logLinesWith(gw, msg, "by=SIGHUP"); len(l) > before {
			return l[before:]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the gateway log after SIGHUP", msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logLinesWith returns the gateway's log lines holding every one of
// subs. A last line not yet ended is left for the next call.
func logLinesWith(gw *harness.Gateway, subs ...string) []string {
	var out []string
	lines := strings.Split(gw.Log(), "\n")
	for _, l := range lines[:len(lines)-1] {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(l, s)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

// dialRefused fails unless a new connection to addr is refused.
func dialRefused(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %s: %v, want connection refused", addr, err)
	}
}

const (
	reloadedMsg = "configuration reloaded"
	refusedMsg  = "configuration reload refused; the running configuration stays"
)

// TestReloadKeepsSessions: a reload that swaps the certificate, adds a
// listener and changes the log level, through the CLI and the admin
// socket, closes nothing: 50 relayed IMAP sessions (cleartext and imaps)
// go on, an LMTP transaction in the middle of DATA delivers once; new
// TLS clients get the new certificate, the new listener takes logins.
// A SIGHUP reload that removes the listener again closes its port, not
// the session opened through it.
func TestReloadKeepsSessions(t *testing.T) {
	const nSessions, nTLS = 50, 10
	start := time.Now()
	r := startReloadEnv(t, []string{"127.0.0.11", "127.0.0.12"}, nSessions+10)
	gw := r.gw

	// Sessions 0..39 on the cleartext listener, 40..49 over imaps; each
	// user's INBOX holds one message of its own.
	sessions := make([]*client, nSessions)
	for i := range sessions {
		u := userName(i)
		if i < nSessions-nTLS {
			sessions[i] = selectedSession(t, r.plain, false, u)
		} else {
			sessions[i] = selectedSession(t, r.imaps, true, u)
		}
		defer sessions[i].close()
		if st := sessions[i].appendMsg([]byte(message(fmt.Sprintf("pre-%d@reload", i), "before the reload"))); !strings.HasPrefix(st, "OK") {
			t.Fatalf("APPEND for %s: %s", u, st)
		}
	}
	t.Logf("%d sessions open after %v", nSessions, time.Since(start).Round(time.Millisecond))
	checkSessions := func(when string) {
		t.Helper()
		for i, c := range sessions {
			c.ok("NOOP")
			if body := c.fetchBody(1); !bytes.Contains(body, []byte(fmt.Sprintf("<pre-%d@reload>", i))) {
				t.Fatalf("%s: session %d (%s) fetched %q", when, i, userName(i), body)
			}
		}
	}
	checkSessions("before the reload")

	// An LMTP transaction stopped halfway through its DATA.
	rcpt := userName(nSessions + 1)
	const lmtpID = "mid-data@reload"
	lc := dialLMTP(t, r.lmtp, "")
	defer lc.close()
	if rep := lc.cmd("LHLO mta.example.org"); !strings.HasPrefix(rep, "250 ") {
		t.Fatal(rep)
	}
	if rep := lc.cmd("MAIL FROM:<sender@example.org>"); !strings.HasPrefix(rep, "250") {
		t.Fatal(rep)
	}
	if rep := lc.cmd("RCPT TO:<%s>", rcpt); !strings.HasPrefix(rep, "250") {
		t.Fatal(rep)
	}
	if rep := lc.cmd("DATA"); !strings.HasPrefix(rep, "354") {
		t.Fatal(rep)
	}
	io.WriteString(lc.conn, "From: sender@example.org\r\nTo: "+rcpt+"\r\nMessage-ID: <"+lmtpID+">\r\nSubject: across a reload\r\n\r\nfirst half, sent before the reload\r\n")

	// The new configuration: another certificate, another listener,
	// another log level.
	cert2, key2 := writeCertIn(t, filepath.Join(r.dir, "c2"), "reload.example")
	der2 := pemCertDER(t, cert2)
	if bytes.Equal(der2, r.cert1) {
		t.Fatal("the two certificates are the same")
	}
	added := freeLoopbackAddrs(t, 1)[0]
	addedLine := fmt.Sprintf("  - {protocol: imap, address: %q}\n", added)
	rewriteConf(t, gw, func(s string) string {
		s = replaceOnce(t, s, "listen:\n", "listen:\n"+addedLine)
		s = replaceOnce(t, s, filepath.Join(r.dir, "c1", "cert.pem"), cert2)
		s = replaceOnce(t, s, filepath.Join(r.dir, "c1", "key.pem"), key2)
		return replaceOnce(t, s, "log: {level: info}", "log: {level: debug}")
	})
	began := time.Now()
	stdout, stderr, code := runReload(t, gw)
	t.Logf("maildirector reload took %v:\n%s%s", time.Since(began).Round(time.Millisecond), stdout, stderr)
	if code != 0 || !strings.Contains(stdout, "configuration reloaded") {
		t.Fatalf("maildirector reload: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "log level INFO → DEBUG") {
		t.Errorf("the report does not mention the log level: %s", stdout)
	}
	if strings.Contains(stdout, "next restart") {
		t.Errorf("no restart-only key changed, yet: %s", stdout)
	}
	if len(logLinesWith(gw, reloadedMsg)) != 1 {
		t.Errorf("the gateway log does not say it reloaded once")
	}

	checkSessions("after the reload")
	io.WriteString(lc.conn, "second half, sent after it\r\n.\r\n")
	if rep := lc.reply(); !strings.HasPrefix(rep, "250") {
		t.Fatalf("DATA across the reload: %s", rep)
	}
	if n := r.delivered(t, rcpt, lmtpID); n != 1 {
		t.Fatalf("%s has the message %d times, want once", rcpt, n)
	}
	lc.cmd("QUIT")

	if !bytes.Equal(leafCert(t, r.imaps), der2) {
		t.Error("a new TLS client is not shown the new certificate")
	}
	// A new session on each listener, the added one included.
	for _, l := range []struct {
		addr  string
		tlsOn bool
	}{{r.plain, false}, {r.imaps, true}, {added, false}} {
		c := selectedSession(t, l.addr, l.tlsOn, userName(nSessions+2))
		c.ok("NOOP")
		c.do("LOGOUT")
		c.close()
	}
	// The debug level is in force: a new user's placement is logged.
	if len(logLinesWith(gw, "level=DEBUG", "user placed", userName(nSessions+2))) == 0 {
		t.Error("no debug lines after the log level went to debug")
	}

	// SIGHUP with the added listener gone again: its port closes, the
	// session opened through it stays.
	onAdded := selectedSession(t, added, false, userName(nSessions+3))
	defer onAdded.close()
	rewriteConf(t, gw, func(s string) string { return replaceOnce(t, s, addedLine, "") })
	hup(t, gw, reloadedMsg)
	dialRefused(t, added)
	onAdded.ok("NOOP")
	onAdded.ok("SELECT INBOX")
	checkSessions("after the SIGHUP reload")
	if !bytes.Equal(leafCert(t, r.imaps), der2) {
		t.Error("the certificate changed although the file did not")
	}
	if l := logLinesWith(gw, refusedMsg); len(l) > 0 {
		t.Errorf("a reload was refused: %s", l[0])
	}
	t.Logf("done in %v", time.Since(start).Round(time.Millisecond))
}

// TestReloadRefusesBrokenConfig: a configuration with a problem is
// refused as a whole, by the CLI (which reads the file first) or by the
// gateway (which builds everything, reading .conf.ext and certificate
// files), and by the gateway on SIGHUP; nothing changes: sessions go on,
// logins work through the old listeners, the old certificate is shown,
// and a later good reload still works.
func TestReloadRefusesBrokenConfig(t *testing.T) {
	r := startReloadEnv(t, []string{"127.0.0.11"}, 10)
	gw := r.gw
	good, err := os.ReadFile(gw.Conf)
	if err != nil {
		t.Fatal(err)
	}
	notCert := filepath.Join(r.dir, "not-a-cert.pem")
	if err := os.WriteFile(notCert, []byte("this is not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cert1 := filepath.Join(r.dir, "c1", "cert.pem")
	// A listener on an address somebody else holds cannot be bound; the
	// fresh one listed before it must not stay bound either.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	fresh := freeLoopbackAddrs(t, 1)[0]
	plain := selectedSession(t, r.plain, false, userName(0))
	defer plain.close()
	overTLS := selectedSession(t, r.imaps, true, userName(1))
	defer overTLS.close()

	cases := []struct {
		name string
		edit func(string) string
		// cause is in a problem line, of the CLI and of the gateway's log.
		cause string
		// local: the CLI refuses the file itself and does not ask the
		// gateway.
		local bool
		// check, if set, checks more after the refusal.
		check func(t *testing.T)
	}{
		{"invalid YAML", func(s string) string { return s + "passdb: [unclosed\n" }, "yaml:", true, nil},
		{"unknown key", func(s string) string { return s + "no_such_key: 1\n" }, "no_such_key", true, nil},
		{"missing .conf.ext", func(s string) string {
			return replaceOnce(t, s, "passdb:\n", "passdb:\n  - {driver: sql, args: /nonexistent/dovecot-sql.conf.ext}\n")
		}, "/nonexistent/dovecot-sql.conf.ext", false, nil},
		{".conf.ext is a directory", func(s string) string {
			return replaceOnce(t, s, "passdb:\n", fmt.Sprintf("passdb:\n  - {driver: ldap, args: %q}\n", r.dir))
		}, "is a directory", false, nil},
		{"certificate file is no certificate", func(s string) string {
			return replaceOnce(t, s, cert1, notCert)
		}, "tls:", false, nil},
		{"address taken", func(s string) string {
			return replaceOnce(t, s, "listen:\n", fmt.Sprintf("listen:\n  - {protocol: imap, address: %q}\n  - {protocol: imap, address: %q}\n", fresh, taken.Addr()))
		}, "address already in use", false, func(t *testing.T) { dialRefused(t, fresh) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(gw.Conf, good, 0o644); err != nil {
				t.Fatal(err)
			}
			rewriteConf(t, gw, tc.edit)
			before := len(logLinesWith(gw, refusedMsg))
			stdout, stderr, code := runReload(t, gw)
			if code != 1 || !strings.Contains(stderr, "reload refused: the running gateway keeps its configuration") {
				t.Fatalf("maildirector reload: exit %d, want 1 and a refusal\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			if !hasProblem(stderr, tc.cause) {
				t.Errorf("no problem line names %q:\n%s", tc.cause, stderr)
			}
			if strings.Contains(stdout, "configuration reloaded") {
				t.Errorf("refused, yet: %s", stdout)
			}
			after := len(logLinesWith(gw, refusedMsg))
			switch {
			case tc.local && after != before:
				t.Errorf("the CLI refused the file, yet the gateway was asked: %d new refusals in its log", after-before)
			case !tc.local && (after == before || len(logLinesWith(gw, refusedMsg, tc.cause)) == 0):
				t.Errorf("the gateway log has no refusal naming %q", tc.cause)
			}
			// The gateway itself refuses the same file on SIGHUP.
			if l := hup(t, gw, refusedMsg); !strings.Contains(strings.Join(l, "\n"), tc.cause) {
				t.Errorf("the SIGHUP refusal does not name %q:\n%s", tc.cause, strings.Join(l, "\n"))
			}
			r.checkUnchanged(t, plain, overTLS)
			if tc.check != nil {
				tc.check(t)
			}
		})
	}
	if l := logLinesWith(gw, reloadedMsg); len(l) > 0 {
		t.Fatalf("a broken configuration was applied: %s", l[0])
	}

	// The reloader is not stuck: the good file reloads.
	if err := os.WriteFile(gw.Conf, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if stdout, stderr, code := runReload(t, gw); code != 0 {
		t.Fatalf("reload of the good file: exit %d\n%s%s", code, stdout, stderr)
	}
	r.checkUnchanged(t, plain, overTLS)
}

// hasProblem reports whether out has a "problem:" line naming cause.
func hasProblem(out, cause string) bool {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "problem:") && strings.Contains(l, cause) {
			return true
		}
	}
	return false
}

// checkUnchanged: the sessions answer, both listeners take new logins,
// and imaps still shows the first certificate.
func (r *reloadEnv) checkUnchanged(t *testing.T, sessions ...*client) {
	t.Helper()
	for _, c := range sessions {
		c.ok("NOOP")
		c.ok("SELECT INBOX")
	}
	for _, tlsOn := range []bool{false, true} {
		addr := r.plain
		if tlsOn {
			addr = r.imaps
		}
		c := selectedSession(t, addr, tlsOn, userName(2))
		c.do("LOGOUT")
		c.close()
	}
	if !bytes.Equal(leafCert(t, r.imaps), r.cert1) {
		t.Error("imaps no longer shows the first certificate")
	}
	if c, err := net.DialTimeout("tcp", r.lmtp, 5*time.Second); err != nil {
		t.Errorf("LMTP listener: %v", err)
	} else {
		c.Close()
	}
}
