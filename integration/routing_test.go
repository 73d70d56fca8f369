// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// clientIP gives user i its own loopback source address, so that the
// backends' logs can show that the client's real address was forwarded.
func clientIP(i int) string { return fmt.Sprintf("127.0.%d.%d", 1+i/250, 1+i%250) }

// TestTwoHundredUsersStickToTheRing logs 200 users in through the gateway
// again and again (LOGIN and AUTHENTICATE PLAIN), each doing SELECT,
// APPEND, FETCH and LOGOUT, and checks with the backends' own logs that
// each user only ever reached the backend the Dovecot ring names, with its
// real client address.
func TestTwoHundredUsersStickToTheRing(t *testing.T) {
	const nUsers, rounds, workers = 200, 3, 8
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}, nUsers)
	e.startGateway(t, "proxy=y nopassword=y", "trusted_networks: [127.0.0.0/8]\n")

	perBackend := map[string]int{}
	for i := 0; i < nUsers; i++ {
		perBackend[e.ringBackend(userName(i))]++
	}
	t.Logf("ring places users: %v", perBackend)
	if len(perBackend) != 3 {
		t.Fatalf("the test needs users on every backend: %v", perBackend)
	}

	for round := 0; round < rounds; round++ {
		var wg sync.WaitGroup
		jobs := make(chan int)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range jobs {
					session(t, e, i, round)
				}
			}()
		}
		for i := 0; i < nUsers; i++ {
			jobs <- i
		}
		close(jobs)
		wg.Wait()
		if t.Failed() {
			return
		}
	}

	// Every backend's own log: a user logs in only on its ring backend,
	// rounds times, always from its real address (forwarded with ID).
	loginRe := regexp.MustCompile(`imap-login: Info: Login: user=<([^>]*)>, method=\S+, rip=([0-9.]+),`)
	// Dovecot's log process writes a moment after the logins: wait for
	// all of them (or give up and let the checks below say what is missing).
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		total := 0
		for _, b := range e.backends {
			total += len(loginRe.FindAllString(b.Log(), -1))
		}
		if total >= nUsers*rounds {
			break
		}
	}
	seen := map[string]map[string]int{} // user -> backend -> count
	for _, b := range e.backends {
		for _, m := range loginRe.FindAllStringSubmatch(b.Log(), -1) {
			user, rip := m[1], m[2]
			var i int
			fmt.Sscanf(user, "user%03d@", &i)
			if rip != clientIP(i) {
				t.Errorf("backend %s logged %s from %s, want the client's address %s", b.Opts.IP, user, rip, clientIP(i))
			}
			if seen[user] == nil {
				seen[user] = map[string]int{}
			}
			seen[user][b.Opts.IP]++
		}
	}
	for i := 0; i < nUsers; i++ {
		u := userName(i)
		want := e.ringBackend(u)
		if len(seen[u]) != 1 || seen[u][want] != rounds {
			t.Errorf("%s: backend logins %v, want %d on %s only", u, seen[u], rounds, want)
		}
	}
}

// session is one user's visit: log in, select, append, fetch, log out.
func session(t *testing.T, e *env, i, round int) {
	u := userName(i)
	c := dial(t, e.gwAddr, clientIP(i))
	defer c.close()
	var st string
	if (i+round)%2 == 0 {
		st = c.login(u, password(u))
	} else {
		st = c.authPlain("", u, password(u))
	}
	if !strings.HasPrefix(st, "OK [CAPABILITY ") {
		t.Errorf("%s: login: %s", u, st)
		return
	}
	c.ok("SELECT INBOX")
	msg := fmt.Sprintf("From: t@example.com\r\nSubject: round %d\r\n\r\nhello %s round %d\r\n", round, u, round)
	if st := c.appendMsg([]byte(msg)); !strings.HasPrefix(st, "OK") {
		t.Errorf("%s: APPEND: %s", u, st)
		return
	}
	c.ok("NOOP")
	if got := string(c.fetchBody(round + 1)); got != msg {
		t.Errorf("%s: FETCH %d gave %q, want %q", u, round+1, got, msg)
	}
	c.ok("LOGOUT")
}

// TestWhoShowsUsersOnTheirBackend holds sessions open and asks each
// backend with `doveadm who` who is connected and from where.
func TestWhoShowsUsersOnTheirBackend(t *testing.T) {
	const n = 30
	e := startBackends(t, []string{"127.0.0.11", "127.0.0.12"}, n)
	e.startGateway(t, "proxy=y nopassword=y", "trusted_networks: [127.0.0.0/8]\n")
	var clients []*client
	for i := 0; i < n; i++ {
		c := dial(t, e.gwAddr, clientIP(i))
		if st := c.login(userName(i), password(userName(i))); !strings.HasPrefix(st, "OK") {
			t.Fatalf("login %s: %s", userName(i), st)
		}
		clients = append(clients, c)
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	found := map[string]string{}
	for _, b := range e.backends {
		who, err := b.Who()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range who {
			if w.Service != "imap" {
				continue
			}
			if prev, dup := found[w.User]; dup && prev != b.Opts.IP {
				t.Errorf("%s is on two backends: %s and %s", w.User, prev, b.Opts.IP)
			}
			found[w.User] = b.Opts.IP
			var i int
			fmt.Sscanf(w.User, "user%03d@", &i)
			if !strings.Contains(w.IP, clientIP(i)) {
				t.Errorf("doveadm who on %s shows %s from %q, want %s", b.Opts.IP, w.User, w.IP, clientIP(i))
			}
		}
	}
	for i := 0; i < n; i++ {
		if got, want := found[userName(i)], e.ringBackend(userName(i)); got != want {
			t.Errorf("%s: doveadm who finds it on %q, the ring names %s", userName(i), got, want)
		}
	}
}
