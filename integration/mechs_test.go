// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/integration/harness"
)

// mechEnv is a gateway offering every mechanism in front of real Dovecot
// backends: a static passdb holding the password in plaintext (so that
// CRAM-MD5, DIGEST-MD5 and SCRAM can check proofs), master-user backend
// logins for the mechanisms that never show the password, client
// certificates from a test CA, and a token introspection endpoint.
type mechEnv struct {
	*env
	caFile, certFile, keyFile string // server TLS (self-signed) and client CA
	clientCert, clientKey     string // a client certificate for user 2
	introspect                *httptest.Server
}

const mechPassword = "s3cret"

func startMechEnv(t *testing.T, mechanisms string) *mechEnv {
	t.Helper()
	requireTools(t, "gsasl")
	users := map[string]string{"anonymous": "anon-pw"}
	for i := 0; i < 6; i++ {
		users[userName(i)] = mechPassword
	}
	e := &mechEnv{env: startBackendsWith(t, []string{"127.0.0.11", "127.0.0.12"}, users)}
	dir := testDir(t)
	var err error
	if e.certFile, e.keyFile, err = harness.WriteSelfSignedCert(dir, "localhost", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	ca, err := harness.NewCA(dir, "client-ca")
	if err != nil {
		t.Fatal(err)
	}
	e.caFile = ca.CertFile
	if e.clientCert, e.clientKey, err = ca.Issue(dir, "client", userName(2)); err != nil {
		t.Fatal(err)
	}
	e.introspect = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if u, ok := strings.CutPrefix(r.Form.Get("token"), "tok-"); ok {
			fmt.Fprintf(w, `{"active":true,"email":%q}`, u)
			return
		}
		w.Write([]byte(`{"active":false}`))
	}))
	t.Cleanup(e.introspect.Close)
	port, _ := harness.FreePort("127.0.0.1")
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
	e.backendExtra = fmt.Sprintf("  master_user: %s\n  master_password: %s\n", harness.MasterUser, harness.MasterPassword)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: imap, address: %q}\n", e.gwAddr),
		staticPassdb("proxy=y password={PLAIN}"+mechPassword), fmt.Sprintf(`trusted_networks: [127.0.0.0/8]
tls: {cert: %q, key: %q, client_ca_file: %q}
auth:
  mechanisms: %q
  oauth2: {introspection_url: %q}
`, e.certFile, e.keyFile, e.caFile, mechanisms, e.introspect.URL))
	return e
}

// gsasl logs in through the gateway with GNU SASL's IMAP client.
func (e *mechEnv) gsasl(t *testing.T, mech, user, pass string, extra ...string) (string, error) {
	t.Helper()
	host, port, _ := strings.Cut(e.gwAddr, ":")
	args := append([]string{"--imap", "--connect", host + ":" + port, "--hostname", "localhost", "-m", mech, "--x509-ca-file", e.certFile}, extra...)
	if user != "" {
		args = append(args, "-a", user)
	}
	if pass != "" {
		args = append(args, "-p", pass)
	}
	out, err := exec.Command("gsasl", args...).CombinedOutput()
	return string(out), err
}

// TestMechanisms: each mechanism logs in through the gateway to a real
// Dovecot backend with a client not written here (GNU gsasl, Python's
// imaplib), and a wrong secret is refused.
func TestMechanisms(t *testing.T) {
	e := startMechEnv(t, "plain login cram-md5 digest-md5 scram-sha-1 scram-sha-256 scram-sha-1-plus scram-sha-256-plus external anonymous xoauth2 oauthbearer")
	for _, mech := range []string{"PLAIN", "LOGIN", "CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-1", "SCRAM-SHA-256"} {
		t.Run(mech, func(t *testing.T) {
			u := userName(1)
			if out, err := e.gsasl(t, mech, u, mechPassword, "--no-starttls"); err != nil {
				t.Fatalf("right password: %v\n%s", err, out)
			}
			if out, err := e.gsasl(t, mech, u, "wrong", "--no-starttls"); err == nil {
				t.Fatalf("wrong password accepted:\n%s", out)
			}
			if mech != "PLAIN" && mech != "LOGIN" && !logHas(e.backendByIP(e.ringBackend(u)), "Login: user=<"+u+">", "master") {
				t.Fatalf("%s: the backend login was not a master login", mech)
			}
		})
	}
	// Channel binding: only over TLS; gsasl binds to the TLS session it
	// negotiated with STARTTLS.
	for _, mech := range []string{"SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"} {
		t.Run(mech, func(t *testing.T) {
			u := userName(5)
			if out, err := e.gsasl(t, mech, u, mechPassword, "--starttls"); err != nil {
				t.Fatalf("right password: %v\n%s", err, out)
			}
			if out, err := e.gsasl(t, mech, u, "wrong", "--starttls"); err == nil {
				t.Fatalf("wrong password accepted:\n%s", out)
			}
		})
	}
	t.Run("SCRAM-PLUS offered on TLS only", func(t *testing.T) {
		c := dial(t, e.gwAddr, "")
		defer c.close()
		caps, _ := c.do("CAPABILITY")
		if strings.Contains(caps[0], "PLUS") || strings.Contains(caps[0], "EXTERNAL") || !strings.Contains(caps[0], "AUTH=SCRAM-SHA-256 ") {
			t.Fatalf("cleartext capabilities: %s", caps[0])
		}
	})
	t.Run("CRAM-MD5 with Python imaplib", func(t *testing.T) {
		requireTools(t, "python3")
		host, port, _ := strings.Cut(e.gwAddr, ":")
		script := fmt.Sprintf(`
import imaplib
m = imaplib.IMAP4(%q, %s)
assert m.login_cram_md5(%q, %q)[0] == "OK"
assert m.select("INBOX")[0] == "OK"
m.logout()
try:
    imaplib.IMAP4(%q, %s).login_cram_md5(%q, "wrong")
    raise SystemExit("wrong password accepted")
except imaplib.IMAP4.error:
    pass
print("CRAM-MD5 OK")
`, host, port, userName(3), mechPassword, host, port, userName(3))
		if out, err := exec.Command("python3", "-c", script).CombinedOutput(); err != nil || !strings.Contains(string(out), "CRAM-MD5 OK") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("EXTERNAL with a client certificate", func(t *testing.T) {
		out, err := e.gsasl(t, "EXTERNAL", "", "", "--starttls", "--x509-cert-file", e.clientCert, "--x509-key-file", e.clientKey)
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		if !logHas(e.backendByIP(e.ringBackend(userName(2))), "Login: user=<"+userName(2)+">") {
			t.Fatal("the certificate's user did not reach its backend")
		}
		if out, err := e.gsasl(t, "EXTERNAL", "", "", "--starttls"); err == nil {
			t.Fatalf("EXTERNAL without a certificate succeeded:\n%s", out)
		}
	})
	t.Run("ANONYMOUS", func(t *testing.T) {
		if out, err := e.gsasl(t, "ANONYMOUS", "", "", "--no-starttls", "-n", "trace@example.org"); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	})
	t.Run("XOAUTH2 and OAUTHBEARER with Python imaplib", func(t *testing.T) {
		requireTools(t, "python3")
		host, port, _ := strings.Cut(e.gwAddr, ":")
		u := userName(4)
		script := fmt.Sprintf(`
import imaplib
def login(mech, token):
    m = imaplib.IMAP4(%q, %s)
    if mech == "XOAUTH2":
        msg = "user=%s\x01auth=Bearer " + token + "\x01\x01"
    else:
        msg = "n,a=%s,\x01auth=Bearer " + token + "\x01\x01"
    try:
        typ, _ = m.authenticate(mech, lambda _: msg.encode())
        return typ
    except imaplib.IMAP4.error as err:
        return "NO"
for mech in ("XOAUTH2", "OAUTHBEARER"):
    assert login(mech, "tok-%s") == "OK", mech
    assert login(mech, "tok-someone-else@example.com") == "NO", mech
    assert login(mech, "expired") == "NO", mech
print("OAuth OK")
`, host, port, u, u, u)
		if out, err := exec.Command("python3", "-c", script).CombinedOutput(); err != nil || !strings.Contains(string(out), "OAuth OK") {
			t.Fatalf("%v\n%s", err, out)
		}
	})
}

// TestOAuthPassThrough: without auth.oauth2, the gateway does not check
// tokens; it hands them to the backend with the same mechanism, and a
// Dovecot oauth2 passdb there checks them (against the same introspection
// endpoint here).
func TestOAuthPassThrough(t *testing.T) {
	requireTools(t, "python3")
	introspect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		if u, ok := strings.CutPrefix(r.Form.Get("token"), "tok-"); ok {
			fmt.Fprintf(w, `{"active":true,"email":%q}`, u)
			return
		}
		w.Write([]byte(`{"active":false}`))
	}))
	defer introspect.Close()
	users := map[string]string{}
	for i := 0; i < 4; i++ {
		users[userName(i)] = "unused-" + strconv.Itoa(i)
	}
	dir := testDir(t)
	oauthConf := filepath.Join(dir, "dovecot-oauth2.conf.ext")
	os.WriteFile(oauthConf, []byte(fmt.Sprintf("introspection_url = %s/\nintrospection_mode = post\nusername_attribute = email\nactive_attribute = active\nactive_value = true\n", introspect.URL)), 0o644)
	e := startBackendsWith(t, []string{"127.0.0.11", "127.0.0.12"}, users, func(o *harness.DovecotOptions) {
		o.AuthMechanisms = "plain login xoauth2 oauthbearer"
		o.ExtraConf = fmt.Sprintf("passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = %s\n}\n", oauthConf)
	})
	e.startGateway(t, "proxy=y nopassword=y", trusted+"auth: {mechanisms: \"plain xoauth2 oauthbearer\"}\n")
	host, port, _ := strings.Cut(e.gwAddr, ":")
	u := userName(2)
	script := fmt.Sprintf(`
import imaplib
def login(mech, token):
    m = imaplib.IMAP4(%q, %s)
    if mech == "XOAUTH2":
        msg = "user=%s\x01auth=Bearer " + token + "\x01\x01"
    else:
        msg = "n,a=%s,\x01auth=Bearer " + token + "\x01\x01"
    try:
        typ, _ = m.authenticate(mech, lambda _: msg.encode())
        return typ
    except imaplib.IMAP4.error:
        return "NO"
for mech in ("XOAUTH2", "OAUTHBEARER"):
    assert login(mech, "tok-%s") == "OK", mech
    assert login(mech, "revoked") == "NO", mech
print("pass-through OK")
`, host, port, u, u, u)
	if out, err := exec.Command("python3", "-c", script).CombinedOutput(); err != nil || !strings.Contains(string(out), "pass-through OK") {
		t.Fatalf("%v\n%s\n%s", err, out, lastLines(e.backendByIP(e.ringBackend(u)).Log(), 10))
	}
	if !logHas(e.backendByIP(e.ringBackend(u)), "Login: user=<"+u+">, method=XOAUTH2", "Login: user=<"+u+">, method=OAUTHBEARER") {
		t.Fatal("the backend did not check the tokens itself")
	}
}
