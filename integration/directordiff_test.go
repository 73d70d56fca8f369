// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/maildirector/maildirector/integration/harness"
)

// startDovecotDirector runs Debian's Dovecot as a Director for servers
// (director_mail_servers), the ring alone (no mail, no logins), in its own
// directory, stopped when t ends.
func startDovecotDirector(t *testing.T, servers string) *harness.Director {
	t.Helper()
	requireTools(t, "dovecot", "doveadm")
	d, err := harness.StartDirector(harness.DirectorOptions{Dir: shortTempDir(t), MailServers: servers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}

// TestDirectorDiff: a Dovecot 2.3 Director and a maildirector gateway
// with the same backends place 200 users alike; a vhost count changed on
// the Director's side, or a user moved there, shows up as differences
// with their reasons.
func TestDirectorDiff(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.71", "127.0.0.72"}, 0)
	e.startGateway(t, "proxy=y nopassword=y", "")
	dd := startDovecotDirector(t, "127.0.0.71 127.0.0.72")
	bin := gatewayBinary(t)
	usersFile := filepath.Join(e.dir, "users.txt")
	var names []string
	for i := range 200 {
		names = append(names, userName(i))
	}
	os.WriteFile(usersFile, []byte(strings.Join(names, "\n")+"\n"), 0o644)
	diff := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"director", "diff", "-c", e.gw.Conf, "--dovecot", dd.Socket}, args...)...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	out, code := diff(usersFile)
	if code != 0 || !strings.Contains(out, "200 users compared, 0 placed differently, 0 backend differences") {
		t.Fatalf("same backends: exit %d\n%s", code, out)
	}
	out, code = diff()
	if code != 0 || !strings.Contains(out, "0 assignments of the Director (USER-LIST) compared, 0 placed differently") {
		t.Fatalf("no assignments: exit %d\n%s", code, out)
	}

	// A user the Director has assigned elsewhere than the ring says.
	moved := userName(5)
	other := "127.0.0.71"
	if e.ringBackend(moved) == other {
		other = "127.0.0.72"
	}
	if o, err := dd.Doveadm("director", "move", moved, other); err != nil {
		t.Fatalf("doveadm director move: %v %s", err, o)
	}
	out, code = diff(usersFile)
	want := fmt.Sprintf("%s: Dovecot %s (assigned), maildirector %s (hashed): the Director has the user assigned until", moved, other, e.ringBackend(moved))
	if code != 1 || !strings.Contains(out, want) || !strings.Contains(out, "200 users compared, 1 placed differently") {
		t.Fatalf("after a move in the Director: exit %d, want a line %q\n%s", code, want, out)
	}
	out, code = diff()
	if code != 1 || !strings.Contains(out, "1 assignments of the Director (USER-LIST) compared, 1 placed differently") {
		t.Fatalf("USER-LIST after a move: exit %d\n%s", code, out)
	}

	// A vhost count changed on the Director's side: the backends differ,
	// and users move with it.
	if o, err := dd.Doveadm("director", "update", "127.0.0.71", "30"); err != nil {
		t.Fatalf("doveadm director update: %v %s", err, o)
	}
	time.Sleep(200 * time.Millisecond)
	out, code = diff(usersFile)
	if code != 1 || !strings.Contains(out, "backends: 127.0.0.71 has vhosts 30 in the Director, 100 here (maildirector director update 127.0.0.71 30)") {
		t.Fatalf("after a vhost change: exit %d\n%s", code, out)
	}
	n := 0
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "the backends differ") {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no user placed differently for the vhost change:\n%s", out)
	}
	t.Logf("vhosts 100 → 30 on one of two backends in the Director: %d of 200 users placed differently, each named with the reason", n)

	// Following the advice makes the backends agree again.
	if o, err := directorCLI(bin, e.gw.Conf, "update", "127.0.0.71", "30"); err != nil {
		t.Fatalf("%v %s", err, o)
	}
	out, _ = diff(usersFile)
	if !strings.Contains(out, "200 users compared, 1 placed differently, 0 backend differences") {
		t.Fatalf("after maildirector director update: \n%s", out)
	}
}

// TestConfigImportRoutesLikeTheDirector: a Dovecot 2.3 Director's own
// dovecot.conf, imported with `maildirector config import` and served as
// it comes out (only the listener and the data directory set for the
// test), places 300 users exactly where that running Director does.
func TestConfigImportRoutesLikeTheDirector(t *testing.T) {
	e := startBackends(t, []string{"127.0.0.73", "127.0.0.74", "127.0.0.75"}, 0)
	dd := startDovecotDirector(t, "127.0.0.73 127.0.0.74-127.0.0.75")
	bin := gatewayBinary(t)
	out, err := exec.Command(bin, "config", "import", dd.Conf).Output()
	if err != nil {
		t.Fatalf("config import: %v", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("imported YAML: %v\n%s", err, out)
	}
	port, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cfg["listen"] = []any{map[string]any{"protocol": "imap", "address": addr}}
	dir, _ := cfg["director"].(map[string]any)
	if dir == nil {
		t.Fatalf("no director section imported:\n%s", out)
	}
	dir["data_dir"] = shortTempDir(t)
	conf, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	gwDir := filepath.Join(e.dir, "imported")
	os.MkdirAll(gwDir, 0o755)
	gw, err := harness.StartGateway(bin, gwDir, string(conf), addr)
	if err != nil {
		t.Fatalf("serving the imported configuration: %v\n%s", err, conf)
	}
	t.Cleanup(gw.Stop)
	usersFile := filepath.Join(gwDir, "users.txt")
	var names []string
	for i := range 300 {
		names = append(names, userName(i))
	}
	os.WriteFile(usersFile, []byte(strings.Join(names, "\n")+"\n"), 0o644)
	res, err := exec.Command(bin, "director", "diff", "-c", gw.Conf, "--dovecot", dd.Socket, usersFile).CombinedOutput()
	if err != nil || !strings.Contains(string(res), "300 users compared, 0 placed differently, 0 backend differences") {
		t.Fatalf("director diff against the Director the configuration came from: %v\n%s\nimported configuration:\n%s", err, res, conf)
	}
}
