// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// imapLogin logs user in on addr, directly on the backend.
func imapLogin(t *testing.T, addr, user, pass string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "* OK") {
		t.Fatalf("greeting: %q %v", line, err)
	}
	fmt.Fprintf(c, "a LOGIN %s %s\r\n", user, pass)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("login %s: %v", user, err)
		}
		if strings.HasPrefix(line, "a ") {
			if !strings.HasPrefix(line, "a OK") {
				t.Fatalf("login %s: %s", user, line)
			}
			return c
		}
	}
}

func TestDovecotSessions(t *testing.T) {
	RequireTools(t, "dovecot", "doveadm")
	ip := "127.0.0.41"
	port, err := FreePort(ip)
	if err != nil {
		t.Fatal(err)
	}
	// Dovecot's unprivileged auth and mail processes must reach into the
	// directory, which t.TempDir makes 0700 (and its parent too).
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	d, err := StartDovecot(DovecotOptions{
		IP: ip, IMAPPort: port, Dir: filepath.Join(dir, "dc"), MailRoot: filepath.Join(dir, "mail"),
		Users: map[string]string{"alice": "pw-a", "bob": "pw-b", "carol": "pw-c"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// expect waits until both Sessions and SessionsDoveadm give want.
	expect := func(want map[string]int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got, err := d.Sessions(ctx)
			if err != nil {
				t.Fatal(err)
			}
			viaDoveadm, err := d.SessionsDoveadm(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if maps.Equal(got, want) && maps.Equal(viaDoveadm, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Sessions = %v, SessionsDoveadm = %v, want %v", got, viaDoveadm, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	expect(map[string]int{})

	a1 := imapLogin(t, d.IMAPAddr(), "alice", "pw-a")
	// Visible as soon as the backend said OK to the login?
	if got, err := d.Sessions(ctx); err != nil || got["alice"] != 1 {
		t.Logf("right after LOGIN OK: %v %v (anvil lags the OK)", got, err)
	}
	a2 := imapLogin(t, d.IMAPAddr(), "alice", "pw-a")
	b1 := imapLogin(t, d.IMAPAddr(), "bob", "pw-b")
	expect(map[string]int{"alice": 2, "bob": 1})

	entries, err := d.AnvilSessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Service != "imap" || e.PID <= 0 || e.Count <= 0 || e.IP != "127.0.0.1" && e.IP != ip {
			t.Errorf("anvil entry %+v", e)
		}
	}
	t.Logf("anvil: %+v", entries)

	fmt.Fprintf(a1, "z LOGOUT\r\n")
	b1.Close() // no LOGOUT: the backend sees the connection end
	expect(map[string]int{"alice": 1})
	a2.Close()
	expect(map[string]int{})

	// A sampling loop's cost.
	start := time.Now()
	const n = 200
	for i := 0; i < n; i++ {
		if _, err := d.Sessions(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("Sessions: %v a sample", time.Since(start)/n)
	start = time.Now()
	for i := 0; i < 5; i++ {
		if _, err := d.SessionsDoveadm(ctx); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("SessionsDoveadm: %v a sample", time.Since(start)/5)

	// A cancelled context ends a sample with the context's error.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := d.Sessions(cctx); err == nil {
		t.Error("Sessions with a cancelled context succeeded")
	}
}

func TestParseAnvilDump(t *testing.T) {
	for line, want := range map[string]AnvilSession{
		"imap/127.0.0.1/alice\t123\t2\t1700000000": {User: "alice", Service: "imap", IP: "127.0.0.1", PID: 123, Count: 2},
		"lmtp/bob@example.com\t9\t1":               {User: "bob@example.com", Service: "lmtp", PID: 9, Count: 1},
		"pop3/::1/a\x01tb\t7\t1\t0\t0":             {User: "a\tb", Service: "pop3", IP: "::1", PID: 7, Count: 1},
	} {
		got, err := parseAnvilDump(line)
		if err != nil || got != want {
			t.Errorf("parseAnvilDump(%q) = %+v, %v; want %+v", line, got, err, want)
		}
	}
	for _, bad := range []string{"", "imap/1.2.3.4/u\t1", "noslash\t1\t1", "imap/u\tx\t1"} {
		if _, err := parseAnvilDump(bad); err == nil {
			t.Errorf("parseAnvilDump(%q) accepted", bad)
		}
	}
}
