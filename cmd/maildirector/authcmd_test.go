// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// realmConf writes a configuration with auth.default_realm, a static
// passdb and userdb, and two backends.
func realmConf(t *testing.T) string {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "maildirector.yaml")
	err := os.WriteFile(conf, []byte(`listen: [{protocol: imap, address: "127.0.0.1:10143"}]
auth:
  default_realm: example.org
  master_user_separator: "*"
passdb:
  - {driver: static, args: "nopassword", master: true, pass: true}
  - {driver: static, args: "password=pw-%n proxy=y"}
userdb:
  - {driver: static, args: "uid=vmail gid=vmail home=/srv/mail/%d/%n"}
director:
  backends: [127.0.0.11, 127.0.0.12]
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return conf
}

// TestToolsUseTheOneName: auth test, auth lookup and user lookup take a
// name without "@" as the gateway does (the default realm, then the
// username format) and print that name, never the argument.
func TestToolsUseTheOneName(t *testing.T) {
	conf := realmConf(t)
	run := func(cmd func(args []string, stdout, stderr *bytes.Buffer) int, args ...string) (string, int) {
		var out, errb bytes.Buffer
		code := cmd(args, &out, &errb)
		if errb.Len() > 0 {
			t.Logf("stderr: %s", errb.String())
		}
		return out.String(), code
	}
	authCmd := func(args []string, o, e *bytes.Buffer) int { return cmdAuth(args, strings.NewReader(""), o, e) }
	userCmd := func(args []string, o, e *bytes.Buffer) int { return cmdUser(args, o, e) }

	for _, tc := range []struct {
		cmd  func([]string, *bytes.Buffer, *bytes.Buffer) int
		args []string
		code int
		want string
	}{
		{authCmd, []string{"test", "-c", conf, "User0042", "pw-user0042"}, 0, "passdb: user0042@example.org auth succeeded\n"},
		{authCmd, []string{"test", "-c", conf, "User0042", "wrong"}, 1, "passdb: user0042@example.org failed: password mismatch\n"},
		{authCmd, []string{"test", "-c", conf, "-M", "Admin", "User0042", "x"}, 0, "passdb: user0042@example.org auth succeeded (as master user admin@example.org)\n"},
		{authCmd, []string{"lookup", "-c", conf, "user0042"}, 0, "passdb: user0042@example.org found\n"},
		{authCmd, []string{"lookup", "-c", conf, "user0042@other.org"}, 0, "passdb: user0042@other.org found\n"},
		{userCmd, []string{"lookup", "-c", conf, "USER0042"}, 0, "userdb: user0042@example.org found\n"},
	} {
		out, code := run(tc.cmd, tc.args...)
		first := out
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			first = out[:i+1]
		}
		if code != tc.code || first != tc.want {
			t.Errorf("%v: exit %d, %q; want %d, %q", tc.args, code, out, tc.code, tc.want)
		}
	}
	// user lookup expands the userdb's templates with the completed name.
	if out, _ := run(userCmd, "lookup", "-c", conf, "user0042"); !strings.Contains(out, "home=/srv/mail/example.org/user0042\n") {
		t.Errorf("user lookup: %q", out)
	}
}
