// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/integration/harness"
)

// TestClusterTrafficTLS: cluster traffic is encrypted and authenticated
// when configured. A gateway's embedded member offers a TCP client URL with
// TLS and client-certificate checks; a second gateway configuration
// (store: etcd) reaches it with a certificate the CA signed and sees the
// first one's backends; without a certificate, or with one from another
// CA, the store refuses it.
func TestClusterTrafficTLS(t *testing.T) {
	dir := testDir(t)
	bin := gatewayBinary(t)
	ca, err := harness.NewCA(dir, "cluster-ca")
	if err != nil {
		t.Fatal(err)
	}
	cert, key, err := ca.Issue(dir, "gw1", "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	other, err := harness.NewCA(dir, "other-ca")
	if err != nil {
		t.Fatal(err)
	}
	badCert, badKey, err := other.Issue(dir, "intruder", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	clientPort, _ := harness.FreePort("127.0.0.1")
	imapPort, _ := harness.FreePort("127.0.0.1")
	clientURL := "https://127.0.0.1:" + strconv.Itoa(clientPort)
	gw1 := fmt.Sprintf(`listen: [{protocol: imap, address: "127.0.0.1:%d"}]
passdb: [{driver: static, args: "proxy=y nopassword=y"}]
director:
  backends: [127.0.0.11, "127.0.0.12 50"]
  data_dir: %s
  embedded:
    client_urls: [%s]
    tls: {ca: %s, cert: %s, key: %s}
`, imapPort, shortTempDir(t), clientURL, ca.CertFile, cert, key)
	g, err := harness.StartGateway(bin, dir, gw1, "127.0.0.1:"+strconv.Itoa(imapPort))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()

	tool := func(name, tls string) (string, int) {
		conf := filepath.Join(dir, name+".yaml")
		os.WriteFile(conf, []byte(fmt.Sprintf(`listen: [{protocol: imap, address: "127.0.0.1:1"}]
passdb: [{driver: static, args: "proxy=y nopassword=y"}]
director:
  backends: [127.0.0.99]
  store: etcd
  etcd: {endpoints: [%s], dial_timeout: 2s, tls: %s}
`, clientURL, tls)), 0o644)
		cmd := exec.Command(bin, "director", "status", "--timeout", "5s", "-c", conf)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return out.String(), code
	}
	out, code := tool("good", fmt.Sprintf("{ca: %s, cert: %s, key: %s}", ca.CertFile, cert, key))
	if code != 0 || !strings.Contains(out, "127.0.0.12       50") || strings.Contains(out, "127.0.0.99  ") {
		t.Fatalf("with the cluster's certificate: exit %d\n%s", code, out)
	}
	t.Logf("with the cluster's certificate:\n%s", out)
	for name, tls := range map[string]string{
		"nocert":  fmt.Sprintf("{ca: %s}", ca.CertFile),
		"othera":  fmt.Sprintf("{ca: %s, cert: %s, key: %s}", ca.CertFile, badCert, badKey),
		"plainca": "{}",
	} {
		out, code := tool(name, tls)
		if code == 0 || strings.Contains(out, "127.0.0.12") {
			t.Errorf("%s: the store answered (exit %d):\n%s", name, code, out)
		}
	}
}
