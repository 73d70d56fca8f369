// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runTool runs the maildirector binary and returns its output and exit
// status.
func runTool(t *testing.T, args ...string) (string, int) {
	t.Helper()
	out, err := exec.Command(gatewayBinary(t), args...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	}
	t.Fatalf("%v: %v", args, err)
	return "", -1
}

// TestAuthTools: auth test / auth lookup / user lookup / director map,
// straight from a configuration file with an LDAP passdb: the verdict,
// every field, and an exit status that tells OK, refused and temporary
// failure apart.
func TestAuthTools(t *testing.T) {
	s := startSlapd(t)
	dir := testDir(t)
	file := ldapConfExt(t, s, "dovecot-ldap.conf.ext", "")
	masters := ldapMastersConfExt(t, s)
	conf := filepath.Join(dir, "maildirector.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`listen: [{protocol: imap, address: "127.0.0.1:10143"}]
auth: {master_user_separator: "*"}
passdb:
  - {driver: ldap, args: %q, master: true, pass: true}
  - {driver: ldap, args: %q}
userdb:
  - {driver: ldap, args: %q}
director: {backends: [127.0.0.11, 127.0.0.12]}
`, masters, file, file)), 0o644)

	type check struct {
		args []string
		code int
		want []string
	}
	for _, c := range []check{
		{[]string{"auth", "test", "-c", conf, "-x", "rip=192.0.2.1", seedUser(17), seedPassword(17)}, 0,
			[]string{"passdb: " + seedUser(17) + " auth succeeded", "extra fields:", "  host=127.0.0.12", "  proxy=y"}},
		{[]string{"auth", "test", "-c", conf, seedUser(17), "wrong"}, 1, []string{"passdb: " + seedUser(17) + " failed: password mismatch"}},
		{[]string{"auth", "test", "-c", conf, "nobody@example.com", "x"}, 1, []string{"failed: unknown user"}},
		{[]string{"auth", "test", "-c", conf, "-M", "proxymaster", seedUser(3), "masterpw"}, 0,
			[]string{"passdb: " + seedUser(3) + " auth succeeded (as master user proxymaster)"}},
		{[]string{"auth", "lookup", "-c", conf, seedUser(17)}, 0, []string{"passdb: " + seedUser(17) + " found", "  host=127.0.0.12"}},
		{[]string{"user", "lookup", "-c", conf, seedUser(5)}, 0, []string{"userdb: " + seedUser(5) + " found", "  home=/srv/mail/example.com/user0005"}},
		{[]string{"director", "map", "-c", conf, seedUser(17)}, 0, []string{"backend:  127.0.0.12", "reason:   pinned (passdb host field)"}},
		{[]string{"director", "map", "-c", conf, seedUser(5)}, 0, []string{"reason:   hashed (the Director ring)"}},
		{[]string{"auth", "test", "-c", conf}, 2, []string{"usage:"}},
	} {
		out, code := runTool(t, c.args...)
		t.Logf("$ maildirector %s  (exit %d)\n%s", strings.Join(c.args, " "), code, out)
		if code != c.code {
			t.Errorf("%v: exit %d, want %d\n%s", c.args, code, c.code, out)
		}
		for _, w := range c.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", c.args, w, out)
			}
		}
	}
	// director map agrees with the ring the gateway uses.
	out, _ := runTool(t, "director", "map", "-c", conf, "--json", seedUser(5))
	var m struct{ Backend, Reason string }
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	e := &env{}
	e.hosts, _ = parseHosts("127.0.0.11", "127.0.0.12")
	if want := e.ringBackend(seedUser(5)); m.Backend != want {
		t.Errorf("director map says %s, the ring %s", m.Backend, want)
	}

	s.Stop()
	out, code := runTool(t, "auth", "test", "-c", conf, "--json", seedUser(1), seedPassword(1))
	t.Logf("$ maildirector auth test --json %s ...  (slapd stopped; exit %d)\n%s", seedUser(1), code, out)
	var o struct{ Result, Error string }
	if err := json.Unmarshal([]byte(out), &o); err != nil || code != 75 || o.Result != "tempfail" {
		t.Errorf("outage: exit %d, %+v, %v\n%s", code, o, err, out)
	}
	out, code = runTool(t, "auth", "test", "-c", conf, seedUser(1), seedPassword(1))
	t.Logf("$ maildirector auth test %s ...  (slapd stopped; exit %d)\n%s", seedUser(1), code, out)
}
