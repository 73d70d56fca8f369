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

// dovecotDirector is a private Dovecot 2.3 Director (no mail, no
// logins): its ring and its director-admin socket.
type dovecotDirector struct {
	conf, socket, dir string
}

// startDovecotDirector runs Debian's Dovecot as a Director for servers
// (director_mail_servers), in its own directory, stopped when t ends.
func startDovecotDirector(t *testing.T, servers string) *dovecotDirector {
	t.Helper()
	requireTools(t, "dovecot", "doveadm")
	dir := shortTempDir(t)
	port, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	d := &dovecotDirector{conf: filepath.Join(dir, "dovecot.conf"), socket: filepath.Join(dir, "run", "director-admin"), dir: dir}
	for _, sub := range []string{"run", "state"} {
		os.MkdirAll(filepath.Join(dir, sub), 0o755)
	}
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
instance_name = md-director-%[2]d
protocols =
listen = 127.0.0.1
ssl = no
director_servers = 127.0.0.1:%[2]d
director_mail_servers = %[3]s
passdb {
  driver = static
  args = nopassword=y
}
service director {
  inet_listener {
    address = 127.0.0.1
    port = %[2]d
  }
}
`, dir, port, servers)
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	// No captured output: the daemon keeps its standard streams, and a
	// pipe would never close.
	if err := exec.Command("dovecot", "-c", d.conf).Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
		t.Fatalf("dovecot director: %v\n%s", err, log)
	}
	t.Cleanup(func() { exec.Command("dovecot", "-c", d.conf, "stop").Run() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _ := d.doveadm("director", "ring", "status")
		if strings.Contains(out, "synced") {
			return d
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Fatalf("director ring never synced: %s\n%s", out, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *dovecotDirector) doveadm(args ...string) (string, error) {
	out, err := exec.Command("doveadm", append([]string{"-c", d.conf}, args...)...).CombinedOutput()
	return string(out), err
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
		cmd := exec.Command(bin, append([]string{"director", "diff", "-c", e.gw.Conf, "--dovecot", dd.socket}, args...)...)
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
	if o, err := dd.doveadm("director", "move", moved, other); err != nil {
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
	if o, err := dd.doveadm("director", "update", "127.0.0.71", "30"); err != nil {
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
	out, err := exec.Command(bin, "config", "import", dd.conf).Output()
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
	res, err := exec.Command(bin, "director", "diff", "-c", gw.Conf, "--dovecot", dd.socket, usersFile).CombinedOutput()
	if err != nil || !strings.Contains(string(res), "300 users compared, 0 placed differently, 0 backend differences") {
		t.Fatalf("director diff against the Director the configuration came from: %v\n%s\nimported configuration:\n%s", err, res, conf)
	}
}
