// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/integration/harness"
)

// TestBackendTLS: backends with certificates from a test CA (127.0.0.11)
// or a self-signed one (127.0.0.12, "wrong"), reached with ssl=yes
// (implicit TLS, the imaps port) and starttls=yes from the passdb, for
// IMAP and LMTP: the right certificate is accepted, the wrong one refused
// (an internal error, [SERVERBUG]: retrying will not help) unless any-cert.
func TestBackendTLS(t *testing.T) {
	dir := testDir(t)
	ca, err := harness.NewCA(dir, "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	imaps, err := harness.FreePort("127.0.0.11", "127.0.0.12")
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
		o.SSLCert, o.SSLKey, o.IMAPSPort = cert, key, imaps
	})
	good, bad := e.findUser(t, "127.0.0.11"), e.findUser(t, "127.0.0.12")
	e.backendExtra = fmt.Sprintf("  tls_ca_file: %q\n", ca.CertFile)
	for _, tc := range []struct {
		fields   string
		user     string
		wantIMAP string
	}{
		{"ssl=yes", good, "OK"},
		{"ssl=yes", bad, "NO [SERVERBUG]"},
		{"ssl=any-cert", bad, "OK"},
		{"starttls=yes", good, "OK"},
		{"starttls=yes", bad, "NO [SERVERBUG]"},
		{"starttls=any-cert", bad, "OK"},
	} {
		t.Run(tc.fields+" "+tc.user, func(t *testing.T) {
			port, _ := harness.FreePort("127.0.0.1")
			lport, _ := harness.FreePort("127.0.0.1")
			e.gwAddr = "127.0.0.1:" + strconv.Itoa(port)
			lmtpAddr := "127.0.0.1:" + strconv.Itoa(lport)
			// backend.ports is set by the env; the imaps port goes in as a
			// per-user port only for ssl=yes.
			fields := tc.fields
			if strings.HasPrefix(fields, "ssl=") {
				fields += " port=" + strconv.Itoa(imaps)
			}
			e.startGatewayWith(t, fmt.Sprintf("  - {protocol: imap, address: %q}\n  - {protocol: lmtp, address: %q}\n", e.gwAddr, lmtpAddr),
				staticPassdb("proxy=y nopassword=y "+fields), trusted)
			c := dial(t, e.gwAddr, "")
			defer c.close()
			if st := c.login(tc.user, password(tc.user)); !strings.HasPrefix(st, tc.wantIMAP) {
				t.Fatalf("IMAP login: %s, want %s", st, tc.wantIMAP)
			}
			if tc.wantIMAP == "OK" {
				// The backend itself says the session is TLS.
				b := e.backendByIP(e.ringBackend(tc.user))
				re := regexp.MustCompile(`imap-login: Info: Login: user=<` + regexp.QuoteMeta(tc.user) + `>.*, TLS`)
				waitFor(t, func() bool { return re.MatchString(b.Log()) })
			}
			if strings.HasPrefix(tc.fields, "starttls") {
				l := dialLMTP(t, lmtpAddr, "")
				defer l.close()
				l.cmd("LHLO mta")
				rr, _ := l.deliver("s@example.org", []string{tc.user}, message("tls-"+tc.fields+"@test", "x"))
				wantLMTP := "250"
				if tc.wantIMAP != "OK" {
					wantLMTP = "451"
				}
				if !strings.HasPrefix(rr[0], wantLMTP) {
					t.Fatalf("LMTP RCPT: %s, want %s", rr[0], wantLMTP)
				}
			}
		})
	}
}
