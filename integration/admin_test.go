// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/integration/harness"
)

// adminToken is the admin API's token in these tests.
const adminToken = "test-token-0123456789abcdef"

// adminEnv is a gateway with its admin socket and API in front of two
// Dovecot backends.
type adminEnv struct {
	*env
	sock, api string
}

func startAdminEnv(t *testing.T, ips []string) *adminEnv {
	t.Helper()
	e := startBackends(t, ips, 40)
	a := &adminEnv{env: e, sock: filepath.Join(shortTempDir(t), "director-admin")}
	tokens := filepath.Join(e.dir, "admin-tokens")
	if err := os.WriteFile(tokens, []byte("# the tests\nops "+adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	a.api = "127.0.0.1:" + strconv.Itoa(port)
	e.startGateway(t, "proxy=y nopassword=y", fmt.Sprintf("admin:\n  socket: %s\n  listen: %q\n  token_file: %s\n", a.sock, a.api, tokens))
	return a
}

// doveadm runs Debian's `doveadm director ARGS -a SOCKET` (no Dovecot
// configuration: its defaults, director_username_hash = %Lu) and returns
// its output and exit status.
func (a *adminEnv) doveadm(t *testing.T, args ...string) (string, int) {
	t.Helper()
	argv := append(append([]string{"-c", "/dev/null", "director"}, args...), "-a", a.sock)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "doveadm", argv...).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return string(out), ee.ExitCode()
	case err != nil:
		t.Fatalf("doveadm %s: %v", strings.Join(args, " "), err)
	}
	return string(out), 0
}

// mustDoveadm runs doveadm and fails the test unless it exits 0.
func (a *adminEnv) mustDoveadm(t *testing.T, args ...string) string {
	t.Helper()
	out, code := a.doveadm(t, args...)
	if code != 0 {
		t.Fatalf("doveadm director %s: exit %d: %s", strings.Join(args, " "), code, out)
	}
	return out
}

// statusRow is one line of `doveadm director status`.
type statusRow struct {
	tag, vhosts, state, changed, users string
}

var statusRowRe = regexp.MustCompile(`^(\S+)\s+(?:([a-z]\S*)\s+)?(\d+)\s+(up|down)\s+(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|-)\s+(\d+)\s*$`)

// status runs `doveadm director status` and reads its table.
func (a *adminEnv) status(t *testing.T) map[string]statusRow {
	t.Helper()
	out := a.mustDoveadm(t, "status")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if !regexp.MustCompile(`^mail server ip\s+tag\s+vhosts\s+state\s+state changed\s+users`).MatchString(lines[0]) {
		t.Fatalf("status header %q", lines[0])
	}
	rows := map[string]statusRow{}
	for _, l := range lines[1:] {
		m := statusRowRe.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("status line %q", l)
		}
		rows[m[1]] = statusRow{m[2], m[3], m[4], m[5], m[6]}
	}
	return rows
}

// userStatus runs `doveadm director status USER`: its current backend
// ("n/a" if none), the ring's, the configuration's.
func (a *adminEnv) userStatus(t *testing.T, user string) (current, hashed, initial string) {
	t.Helper()
	out := a.mustDoveadm(t, "status", user)
	m := regexp.MustCompile(`^Current: (\S+) \(expires (.+)\)\nHashed: (\S*)\nInitial config: (\S*)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("doveadm director status %s: %q", user, out)
	}
	return m[1], m[3], m[4]
}

// adminLogin logs user in through the gateway and keeps the session.
func adminLogin(t *testing.T, e *env, user string) *tclient {
	t.Helper()
	c, err := tdial(e.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.login(user); err != nil || !strings.HasPrefix(st, "OK") {
		c.close()
		t.Fatalf("login %s: %q %v", user, st, err)
	}
	return c
}

// waitEnded waits until the server ends c's session (a kick or a move).
func waitEnded(t *testing.T, c *tclient, what string) {
	t.Helper()
	defer c.close()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		st, err := c.do("NOOP")
		if err != nil || !strings.HasPrefix(st, "OK") {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("%s: the session still runs", what)
}

// backendsWithSessions asks the backends' anvils where user has sessions.
func backendsWithSessions(t *testing.T, e *env, user string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := e.sessionsNow(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return backendsOf(m[user])
}

// TestAdminDoveadm drives a running gateway with Debian's unmodified
// `doveadm director … -a SOCKET`, as a Director site's scripts do, and
// checks doveadm's output against what the gateway and the backends do.
func TestAdminDoveadm(t *testing.T) {
	const home, other = "127.0.0.71", "127.0.0.72"
	a := startAdminEnv(t, []string{home, other})

	fi, err := os.Stat(a.sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin socket mode %v, want a socket with 0600", fi.Mode())
	}

	// Users whose ring backend is home, and one whose is the other.
	var atHome []string
	for i := 0; i < 40 && len(atHome) < 2; i++ {
		if a.ringBackend(userName(i)) == home {
			atHome = append(atHome, userName(i))
		}
	}
	if len(atHome) < 2 {
		t.Fatal("the test needs two users on the first backend")
	}
	userA, userB := atHome[0], atHome[1]

	// status: the configured backends, up, nobody yet.
	rows := a.status(t)
	for _, ip := range []string{home, other} {
		if r := rows[ip]; r.vhosts != "100" || r.state != "up" || r.users != "0" || r.changed == "-" || r.tag != "" {
			t.Errorf("status %s: %+v", ip, r)
		}
	}
	if len(rows) != 2 {
		t.Errorf("status lists %d backends: %v", len(rows), rows)
	}

	// A held session: status counts it, status USER and map name its backend.
	sessA := adminLogin(t, a.env, userA)
	if r := a.status(t)[home]; r.users != "1" {
		t.Errorf("status %s with %s logged in: users %s, want 1", home, userA, r.users)
	}
	cur, hashed, initial := a.userStatus(t, userA)
	if cur != home || hashed != home || initial != home {
		t.Errorf("status %s: current %s, hashed %s, initial config %s; want %s", userA, cur, hashed, initial, home)
	}
	usersFile := filepath.Join(a.dir, "users")
	var names []string
	for i := 0; i < 40; i++ {
		names = append(names, userName(i))
	}
	os.WriteFile(usersFile, []byte(strings.Join(names, "\n")+"\n"), 0o644)
	hashA := strconv.FormatUint(uint64(director.UserHash(userA)), 10)
	mapRe := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(userA) + `\s+` + hashA + `\s+` + regexp.QuoteMeta(home) + `\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s*$`)
	if out := a.mustDoveadm(t, "map", "-f", usersFile); !mapRe.MatchString(out) || strings.Count(out, "\n") != 2 {
		t.Errorf("map: want a header and %s's line (%s on %s):\n%s", userA, hashA, home, out)
	}
	if out := a.mustDoveadm(t, "map", "-f", usersFile, other); strings.Contains(out, userA) {
		t.Errorf("map %s lists %s:\n%s", other, userA, out)
	}

	// update to 0: nobody new lands on home, the held session stays; and back.
	a.mustDoveadm(t, "update", home, "0")
	if r := a.status(t)[home]; r.vhosts != "0" || r.state != "up" {
		t.Errorf("status after update %s 0: %+v", home, r)
	}
	sessB := adminLogin(t, a.env, userB)
	if cur, hashed, _ := a.userStatus(t, userB); cur != other || hashed != other {
		t.Errorf("%s logged in with %s at 0 vhosts: current %s, hashed %s; want %s", userB, home, cur, hashed, other)
	}
	sessB.close()
	if st, err := sessA.do("NOOP"); err != nil || !strings.HasPrefix(st, "OK") {
		t.Errorf("%s's session after update 0: %q %v", userA, st, err)
	}
	if cur, _, _ := a.userStatus(t, userA); cur != home {
		t.Errorf("%s after update 0: current %s, want %s (nobody moves)", userA, cur, home)
	}
	t.Logf("after update %s 0:\n$ doveadm director status\n%s$ doveadm director status %s\n%s", home, a.mustDoveadm(t, "status"), userA, a.mustDoveadm(t, "status", userA))
	a.mustDoveadm(t, "update", home, "100")
	if r := a.status(t)[home]; r.vhosts != "100" {
		t.Errorf("status after update %s 100: %+v", home, r)
	}

	// down / up: down moves the host's users (userB) away first.
	a.mustDoveadm(t, "down", other)
	if r := a.status(t)[other]; r.state != "down" {
		t.Errorf("status after down %s: %+v", other, r)
	}
	if cur, _, _ := a.userStatus(t, userB); cur == other {
		t.Errorf("%s is still on %s after it went down", userB, other)
	}
	a.mustDoveadm(t, "up", other)
	if r := a.status(t)[other]; r.state != "up" {
		t.Errorf("status after up %s: %+v", other, r)
	}

	// move: the held session ends, the user is on the other backend, and
	// logs in there.
	a.mustDoveadm(t, "move", userA, other)
	waitEnded(t, sessA, "move")
	if cur, _, _ := a.userStatus(t, userA); cur != other {
		t.Errorf("%s after move: current %s, want %s", userA, cur, other)
	}
	sessA2 := adminLogin(t, a.env, userA)
	if got := backendsWithSessions(t, a.env, userA); len(got) != 1 || got[0] != other {
		t.Errorf("%s after move has sessions on %v, want %s only", userA, got, other)
	}
	// A move to where the user is changes nothing (Director's rule).
	a.mustDoveadm(t, "move", userA, other)
	if st, err := sessA2.do("NOOP"); err != nil || !strings.HasPrefix(st, "OK") {
		t.Errorf("a move to the user's own backend ended its session: %q %v", st, err)
	}

	// kick: the session ends; the user stays where it was.
	a.mustDoveadm(t, "kick", userA)
	waitEnded(t, sessA2, "kick")
	if cur, _, _ := a.userStatus(t, userA); cur != other {
		t.Errorf("%s after kick: current %s, want %s", userA, cur, other)
	}

	// flush (safe): the other backend's users go back to the ring.
	sessA3 := adminLogin(t, a.env, userA)
	a.mustDoveadm(t, "flush", other)
	waitEnded(t, sessA3, "flush")
	if cur, _, _ := a.userStatus(t, userA); cur == other {
		t.Errorf("%s after flush %s is still there", userA, other)
	}
	a.mustDoveadm(t, "flush", "all")
	if out, code := a.doveadm(t, "flush", "-F", home); code != 0 {
		t.Errorf("flush -F: %d %s", code, out)
	}

	// Errors as doveadm reports them with Director.
	if out, code := a.doveadm(t, "update", "127.0.0.99", "5"); code != 75 || !strings.Contains(out, "127.0.0.99: doesn't exist") {
		t.Errorf("update of an unknown host: %d %q", code, out)
	} else {
		t.Logf("$ doveadm director update 127.0.0.99 5\n%sexit %d", out, code)
	}
	if out, code := a.doveadm(t, "down", "127.0.0.99"); code != 68 || !strings.Contains(out, "doesn't exist") {
		t.Errorf("down of an unknown host: %d %q", code, out)
	}
	if out, code := a.doveadm(t, "add", "-t", "other", home); code != 75 || !strings.Contains(out, "host tag can't be changed") {
		t.Errorf("a tag change: %d %q", code, out)
	}
	if out, code := a.doveadm(t, "update", home, "1001"); code != 75 || !strings.Contains(out, "vhost count too large") {
		t.Errorf("1001 vhosts: %d %q", code, out)
	}

	// add / remove, and dump (HOST-LIST, HOST-LIST-REMOVED).
	a.mustDoveadm(t, "add", "127.0.0.73", "7")
	if r := a.status(t)["127.0.0.73"]; r.vhosts != "7" {
		t.Errorf("status after add: %+v", r)
	}
	a.mustDoveadm(t, "remove", other)
	dump := a.mustDoveadm(t, "dump")
	for _, want := range []string{"doveadm director add -a " + a.sock + " " + home + " 100\n", "doveadm director add -a " + a.sock + " 127.0.0.73 7\n", "doveadm director remove -a " + a.sock + " " + other + " \n"} {
		if !strings.Contains(dump, want) {
			t.Errorf("dump lacks %q:\n%s", want, dump)
		}
	}
	if out := a.mustDoveadm(t, "ring", "status"); !strings.Contains(out, "self") {
		t.Errorf("ring status:\n%s", out)
	} else {
		t.Logf("$ doveadm director ring status\n%s$ doveadm director dump\n%s", out, dump)
	}
	if !strings.Contains(a.gw.Log(), `msg="admin: USER-MOVE" by="admin-socket:`) {
		t.Errorf("the gateway did not log who moved the user")
	}
}

// TestAdminAPITokens: the admin API answers nothing, not even a backend's
// name, and changes nothing, without a valid token.
func TestAdminAPITokens(t *testing.T) {
	const home = "127.0.0.74"
	a := startAdminEnv(t, []string{home, "127.0.0.75"})
	get := func(method, path, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+a.api+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, auth := range []string{"", "Bearer wrong-token-0123456789abcdef", "Bearer " + adminToken[:len(adminToken)-1], adminToken} {
		for _, r := range [][2]string{{"GET", "/api/v1/status"}, {"GET", "/api/v1/hosts"}, {"GET", "/api/v1/map"}, {"POST", "/api/v1/hosts/" + home + "/down"}, {"GET", "/metrics"}} {
			status, body := get(r[0], r[1], auth)
			if status != http.StatusUnauthorized || strings.Contains(body, "127.0.0") || len(body) > 30 {
				t.Errorf("%s %s with %q: %d %q, want 401 and no data", r[0], r[1], auth, status, body)
			}
		}
	}
	if r := a.status(t)[home]; r.state != "up" {
		t.Errorf("a refused request changed %s: %+v", home, r)
	}
	status, body := get("GET", "/api/v1/status", "Bearer "+adminToken)
	if status != 200 || !strings.Contains(body, `"ip": "`+home+`"`) {
		t.Errorf("with the token: %d %s", status, body)
	}
	status, body = get("POST", "/api/v1/hosts/"+home+"/down", "Bearer "+adminToken)
	if status != 200 {
		t.Errorf("down with the token: %d %s", status, body)
	}
	if r := a.status(t)[home]; r.state != "down" {
		t.Errorf("after down through the API: %+v", r)
	}
	if !strings.Contains(a.gw.Log(), `by=api:ops@127.0.0.1`) {
		t.Errorf("the gateway did not log the token's name")
	}
}
