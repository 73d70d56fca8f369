// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// dovecotPlacements reads a ring vector file recorded from a real Dovecot
// 2.3 Director (director/testdata/dovecot23-ring, gen.sh): its backends
// line and user -> backend IP.
func dovecotPlacements(t *testing.T, name string) (backends string, placed map[string]string) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "director", "testdata", "dovecot23-ring", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	placed = map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# backends:"); ok {
			backends = strings.TrimSpace(rest)
		}
		if user, ip, ok := strings.Cut(line, "\t"); ok && !strings.HasPrefix(line, "#") {
			placed[user] = ip
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return backends, placed
}

// TestDefaultRealmOneBackendPerUser: with auth.default_realm example.org,
// users log in as "userNNN" (some as "UserNNN") while mail arrives for
// "userNNN@example.org". Each is one user: its LMTP deliveries and its
// IMAP sessions land on one backend, the one a real Dovecot 2.3 Director
// names for "usernnn@example.org" (two-default.tsv). The backends say so
// themselves: their logs (imap-login and lmtp lines), `doveadm who`, and
// the shared mail root, which holds only the "@example.org" maildirs.
func TestDefaultRealmOneBackendPerUser(t *testing.T) {
	const n = 40
	ips := []string{"127.0.0.11", "127.0.0.12"}
	backendsLine, placed := dovecotPlacements(t, "two-default.tsv")
	if backendsLine != "127.0.0.11=100 127.0.0.12=100" {
		t.Fatalf("two-default.tsv was recorded with backends %q, not this test's", backendsLine)
	}
	full := func(i int) string { return fmt.Sprintf("user%03d@example.org", i) }
	users := map[string]string{}
	perBackend := map[string]int{}
	for i := 0; i < n; i++ {
		users[full(i)] = password(full(i))
		ip, ok := placed[full(i)]
		if !ok {
			t.Fatalf("%s is not in two-default.tsv: regenerate it with gen.sh", full(i))
		}
		perBackend[ip]++
	}
	if len(perBackend) != 2 {
		t.Fatalf("the test needs users on both backends: %v", perBackend)
	}

	e := startBackendsWith(t, ips, users)
	imapPort, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	lmtpPort, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(imapPort)
	lmtpAddr := "127.0.0.1:" + strconv.Itoa(lmtpPort)
	e.startGatewayWith(t,
		fmt.Sprintf("  - {protocol: imap, address: %q}\n  - {protocol: lmtp, address: %q}\n", e.gwAddr, lmtpAddr),
		"proxy=y nopassword=y",
		"auth: {default_realm: example.org}\ntrusted_networks: [127.0.0.0/8]\n")

	// Mail first, for the full address (and, for a few, the bare name and
	// a +detail: the same user).
	var rcpts []string
	for i := 0; i < n; i++ {
		switch i % 10 {
		case 3:
			rcpts = append(rcpts, fmt.Sprintf("user%03d", i))
		case 7:
			rcpts = append(rcpts, fmt.Sprintf("user%03d+list@example.org", i))
		default:
			rcpts = append(rcpts, full(i))
		}
	}
	lc := dialLMTP(t, lmtpAddr, "")
	if r := lc.cmd("LHLO mta.example.org"); !strings.HasPrefix(r, "250 ") {
		t.Fatal(r)
	}
	rcptReplies, dataReplies := lc.deliver("sender@example.net", rcpts, message("realm-1@test", "one name per user"))
	lc.cmd("QUIT")
	lc.close()
	for i, r := range rcptReplies {
		if !strings.HasPrefix(r, "250") {
			t.Errorf("RCPT %s: %s", rcpts[i], r)
		}
	}
	for i, r := range dataReplies {
		if !strings.HasPrefix(r, "250") {
			t.Errorf("DATA for recipient %d: %s", i, r)
		}
	}
	if t.Failed() {
		return
	}

	// Then IMAP sessions, logging in without the realm; they stay open
	// for doveadm who, and each finds the message LMTP delivered.
	var clients []*client
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for i := 0; i < n; i++ {
		login := fmt.Sprintf("user%03d", i)
		if i%2 == 1 {
			login = fmt.Sprintf("User%03d", i)
		}
		c := dial(t, e.gwAddr, clientIP(i))
		clients = append(clients, c)
		if st := c.login(login, password(full(i))); !strings.HasPrefix(st, "OK") {
			t.Fatalf("LOGIN %s: %s", login, st)
		}
		untagged := c.ok("SELECT INBOX")
		if !strings.Contains(strings.Join(untagged, "\n"), "* 1 EXISTS") {
			t.Errorf("%s: INBOX does not hold the delivered message: %q", login, untagged)
		}
	}

	// doveadm who, on each backend: every user is connected to its ring
	// backend only, under its full name.
	whoOn := map[string]string{}
	for _, b := range e.backends {
		who, err := b.Who()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range who {
			if w.Service != "imap" {
				continue
			}
			if prev, dup := whoOn[w.User]; dup && prev != b.Opts.IP {
				t.Errorf("doveadm who finds %s on %s and on %s", w.User, prev, b.Opts.IP)
			}
			whoOn[w.User] = b.Opts.IP
		}
	}
	if len(whoOn) != n {
		t.Errorf("doveadm who shows %d users, want %d: %v", len(whoOn), n, whoOn)
	}

	// The backends' logs: logins and deliveries of each user, on its
	// Dovecot ring backend only.
	loginRe := regexp.MustCompile(`imap-login: Info: Login: user=<([^>]*)>`)
	deliveryRe := regexp.MustCompile(`lmtp\(([^)]*)\)<[^>]*><[^>]*>: Info: [^\n]*saved mail to INBOX`)
	logins := map[string]map[string]int{}     // user -> backend -> count
	deliveries := map[string]map[string]int{} // user -> backend -> count
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		clear(logins)
		clear(deliveries)
		total := 0
		for _, b := range e.backends {
			log := b.Log()
			for _, m := range loginRe.FindAllStringSubmatch(log, -1) {
				countOn(logins, m[1], b.Opts.IP)
				total++
			}
			for _, m := range deliveryRe.FindAllStringSubmatch(log, -1) {
				countOn(deliveries, m[1], b.Opts.IP)
				total++
			}
		}
		if total >= 2*n || time.Now().After(deadline) {
			break
		}
	}
	for i := 0; i < n; i++ {
		u, want := full(i), placed[full(i)]
		if len(logins[u]) != 1 || logins[u][want] != 1 {
			t.Errorf("%s: IMAP logins on the backends %v, want one on %s (Dovecot's ring)", u, logins[u], want)
		}
		if len(deliveries[u]) != 1 || deliveries[u][want] != 1 {
			t.Errorf("%s: LMTP deliveries on the backends %v, want one on %s (Dovecot's ring)", u, deliveries[u], want)
		}
		if got := whoOn[u]; got != want {
			t.Errorf("%s: doveadm who finds it on %q, want %s", u, got, want)
		}
		if got := e.delivered(t, u, "realm-1@test"); got != 1 {
			t.Errorf("%s: the maildir holds the message %d times", u, got)
		}
	}
	for user := range logins {
		if _, ok := users[user]; !ok {
			t.Errorf("a backend logged a login as %q, a name no user has", user)
		}
	}
	for user := range deliveries {
		if _, ok := users[user]; !ok {
			t.Errorf("a backend delivered to %q, a name no user has", user)
		}
	}
	// The shared mail root: one maildir per user, under its full name.
	dirs, err := os.ReadDir(filepath.Join(e.dir, "mail"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, ok := users[d.Name()]; !ok {
			t.Errorf("mail root holds %q, a name no user has", d.Name())
		}
	}
	if len(dirs) != n {
		t.Errorf("mail root holds %d maildirs, want %d", len(dirs), n)
	}
}

func countOn(m map[string]map[string]int, user, backend string) {
	if m[user] == nil {
		m[user] = map[string]int{}
	}
	m[user][backend]++
}
