// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/integration/harness"
)

// TestTLS runs a STARTTLS listener and an imaps listener without trusted
// networks: cleartext logins from another address are refused with
// LOGINDISABLED / PRIVACYREQUIRED; TLS logins work (Go, Python, curl).
func TestTLS(t *testing.T) {
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
	imapsAddr := "127.0.0.1:" + strconv.Itoa(ports[1])
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: imap, address: %q}\n  - {protocol: imaps, address: %q}\n", e.gwAddr, imapsAddr),
		"proxy=y nopassword=y", fmt.Sprintf("tls: {cert: %q, key: %q}\n", cert, key))
	u := userName(1)

	t.Run("cleartext from another address: LOGINDISABLED", func(t *testing.T) {
		c := dial(t, e.gwAddr, "127.0.0.77")
		defer c.close()
		caps, _ := c.do("CAPABILITY")
		if len(caps) != 1 || !strings.Contains(caps[0], " STARTTLS") || !strings.Contains(caps[0], " LOGINDISABLED") || strings.Contains(caps[0], "AUTH=PLAIN") {
			t.Fatalf("capabilities %q", caps)
		}
		if st := c.login(u, password(u)); !strings.HasPrefix(st, "NO [PRIVACYREQUIRED]") {
			t.Fatalf("LOGIN: %q", st)
		}
		if st := c.authPlain("", u, password(u)); !strings.HasPrefix(st, "NO [PRIVACYREQUIRED]") {
			t.Fatalf("AUTHENTICATE PLAIN: %q", st)
		}
	})

	t.Run("STARTTLS then LOGIN", func(t *testing.T) {
		c := dial(t, e.gwAddr, "127.0.0.77")
		defer c.close()
		if _, st := c.do("STARTTLS"); !strings.HasPrefix(st, "OK") {
			t.Fatalf("STARTTLS: %q", st)
		}
		tc := tls.Client(c.conn, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		c.conn = tc
		c.r.Reset(tc)
		caps, _ := c.do("CAPABILITY")
		if strings.Contains(caps[0], "STARTTLS") || strings.Contains(caps[0], "LOGINDISABLED") || !strings.Contains(caps[0], "AUTH=PLAIN") {
			t.Fatalf("capabilities after STARTTLS %q", caps)
		}
		if st := c.login(u, password(u)); !strings.HasPrefix(st, "OK [CAPABILITY") {
			t.Fatalf("LOGIN over TLS: %q", st)
		}
		c.ok("SELECT INBOX")
	})

	t.Run("Python imaplib over imaps and STARTTLS", func(t *testing.T) {
		requireTools(t, "python3")
		script := fmt.Sprintf(`
import imaplib, ssl
ctx = ssl.create_default_context(cafile=%q)
m = imaplib.IMAP4_SSL("127.0.0.1", %d, ssl_context=ctx)
assert m.login(%q, %q)[0] == "OK"
assert m.select("INBOX")[0] == "OK"
m.logout()
m = imaplib.IMAP4("127.0.0.1", %d)
m.starttls(ssl_context=ctx)
assert m.login(%q, %q)[0] == "OK"
m.logout()
print("python TLS OK")
`, cert, ports[1], u, password(u), ports[0], u, password(u))
		out, err := exec.Command("python3", "-c", script).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "python TLS OK") {
			t.Fatalf("python3: %v\n%s", err, out)
		}
	})

	t.Run("curl over imaps", func(t *testing.T) {
		requireTools(t, "curl")
		out, err := exec.Command("curl", "-sS", "--max-time", "20", "--cacert", cert,
			"--url", "imaps://"+imapsAddr+"/INBOX", "--user", u+":"+password(u), "-X", "EXAMINE INBOX").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "UIDVALIDITY") {
			t.Fatalf("curl: %v\n%s", err, out)
		}
	})
}

// TestSNI: each client gets the certificate for the name it asks for, and
// the default certificate when it asks for none of them.
func TestSNI(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.11"}, 2)
	dir := testDir(t)
	var files [3][2]string
	for i, name := range []string{"mail.example.com", "imap.example.org", "mail.example.net"} {
		sub := filepath.Join(dir, name)
		os.MkdirAll(sub, 0o755)
		c, k, err := harness.WriteSelfSignedCert(sub, name)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = [2]string{c, k}
	}
	port, _ := harness.FreePort("127.0.0.1")
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: imaps, address: %q}\n", e.gwAddr), "proxy=y nopassword=y",
		fmt.Sprintf("tls:\n  cert: %q\n  key: %q\n  sni:\n    - {cert: %q, key: %q}\n    - {cert: %q, key: %q}\n",
			files[0][0], files[0][1], files[1][0], files[1][1], files[2][0], files[2][1]))
	for sni, want := range map[string]string{"imap.example.org": "imap.example.org", "mail.example.net": "mail.example.net",
		"": "mail.example.com", "other.example": "mail.example.com"} {
		conn, err := tls.Dial("tcp", e.gwAddr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
		if err != nil {
			t.Fatalf("SNI %q: %v", sni, err)
		}
		got := conn.ConnectionState().PeerCertificates[0].Subject.CommonName
		conn.Close()
		if got != want {
			t.Errorf("SNI %q: got the certificate of %s, want %s", sni, got, want)
		}
	}
}
