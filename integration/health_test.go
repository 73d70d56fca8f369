// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/health"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/integration/harness"
)

// The built-in health checks with two gateways on one etcd in front of
// two Dovecot backends (check: login, interval 1s, fall 2, rise 2): one
// gateway runs the checks; a SIGKILLed backend is taken down within about
// fall × interval and its users log in on the other; restarted, it is
// brought up after rise successes; a host an operator took down stays
// down; SIGKILL the gateway that runs the checks and the other takes over.

const (
	healthLeads = `msg="health: this gateway runs the health checks"`
	healthDown  = `msg="health: taking backend down`
	healthUp    = `msg="health: bringing backend up"`
)

var healthIPs = []string{"127.0.0.61", "127.0.0.62"}

func TestHealthChecks(t *testing.T) {
	e := startBackends(t, healthIPs, 20)
	etcd := harness.StartEtcd(t, harness.EtcdOptions{Dir: filepath.Join(e.dir, "etcd")})
	bin := gatewayBinary(t)
	const interval, fall, rise = time.Second, 2, 2
	probe := userName(19)
	store := fmt.Sprintf("  store: etcd\n  lease_ttl: 3s\n  etcd: {endpoints: [%s], prefix: /mdit-health/}\n"+
		"  health: {interval: %v, timeout: 800ms, fall: %d, rise: %d, check: login, login_user: %q, login_password: %q}\n",
		etcd.ClientURL(), interval, fall, rise, probe, password(probe))
	var gws []*clusterGW
	for i := 0; i < 2; i++ {
		gws = append(gws, e.newClusterGW(t, clusterGWConf{name: fmt.Sprintf("gw%d", i), backends: healthIPs, director: store}))
	}
	startAll(t, bin, gws[0])
	startAll(t, bin, gws[1])
	conf := gws[0].conf()
	a, b := healthIPs[0], healthIPs[1]

	// One owner.
	owner := waitOwner(t, gws, -1)
	other := 1 - owner
	t.Logf("gw%d runs the checks", owner)
	time.Sleep(3 * interval) // a few rounds, all healthy
	if hostState(t, bin, conf, a).Down || hostState(t, bin, conf, b).Down {
		t.Fatal("a healthy backend is down")
	}

	// A user the ring places on b, with a session open there.
	var user string
	for i := 0; i < 19 && user == ""; i++ {
		if ringOf(e.hosts, userName(i)) == b {
			user = userName(i)
		}
	}
	if user == "" {
		t.Fatal("no test user hashes to " + b)
	}
	held := mustLogin(t, gws[other].imapAddr, user)
	defer held.close()

	// b dies: down within fall × interval (plus a round's timeout and the
	// move), by the checks, its user on a from then on.
	killed := time.Now()
	e.backends[1].Kill()
	downAfter := waitHost(t, bin, conf, b, true, 15*time.Second).Sub(killed)
	h := hostState(t, bin, conf, b)
	if h.DownBy != director.DownByHealth || len(h.Health) == 0 || !strings.Contains(h.Health[len(h.Health)-1].Reason, "checks failed in a row") {
		t.Fatalf("down by %q (%+v), want the health checks with a reason", h.DownBy, h.Health)
	}
	t.Logf("health history: %+v", h.Health)
	t.Logf("%s down %v after SIGKILL (fall %d × interval %v)", b, downAfter.Round(10*time.Millisecond), fall, interval)
	if limit := time.Duration(fall+1)*interval + 2*time.Second; downAfter > limit {
		t.Errorf("down after %v, want within about %v", downAfter, limit)
	}
	c := mustLogin(t, gws[owner].imapAddr, user)
	c.close()
	for deadline := time.Now().Add(10 * time.Second); e.backendLogins(0)[user][a] == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not log in on %s after %s went down", user, a, b)
		}
	}

	// b comes back: up after rise successes.
	restarted := time.Now()
	restartBackend(t, e, 1)
	upAfter := waitHost(t, bin, conf, b, false, 15*time.Second).Sub(restarted)
	t.Logf("%s up %v after restart (rise %d × interval %v)", b, upAfter.Round(10*time.Millisecond), rise, interval)
	if limit := time.Duration(rise+1)*interval + 2*time.Second; upAfter > limit {
		t.Errorf("up after %v, want within about %v", upAfter, limit)
	}

	// Only the owner checked, took down and brought up.
	ownerLog, otherLog := gws[owner].log(), gws[other].log()
	for _, want := range []string{healthDown, healthUp, `msg="health: backend failed its check" backend=` + b} {
		if !strings.Contains(ownerLog, want) {
			t.Errorf("gw%d's log lacks %s", owner, want)
		}
	}
	for _, never := range []string{healthLeads, healthDown, healthUp, "health: backend failed"} {
		if strings.Contains(otherLog, never) {
			t.Errorf("gw%d, which does not run the checks, logged %s", other, never)
		}
	}
	if n := strings.Count(ownerLog, healthDown); n != 1 {
		t.Errorf("gw%d took a backend down %d times, want once", owner, n)
	}

	// An operator's down stays down, healthy as the host is.
	if _, err := directorCLI(bin, conf, "down", b); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(rise+2) * interval)
	if h := hostState(t, bin, conf, b); !h.Down || h.DownBy != director.DownByOperator {
		t.Fatalf("after an operator's down and %d healthy rounds: %+v", rise+2, h)
	}
	if _, err := directorCLI(bin, conf, "up", b); err != nil {
		t.Fatal(err)
	}

	// The owner dies: the other gateway takes over (within the election
	// lease, lease_ttl) and takes b down when it dies again.
	died := time.Now()
	gws[owner].kill()
	waitOwner(t, gws, other)
	t.Logf("gw%d runs the checks %v after gw%d was SIGKILLed", other, time.Since(died).Round(10*time.Millisecond), owner)
	e.backends[1].Kill()
	waitHost(t, bin, gws[other].conf(), b, true, 20*time.Second)
	if !strings.Contains(gws[other].log(), healthDown) {
		t.Errorf("gw%d took over but did not log taking %s down", other, b)
	}
}

// waitOwner waits until exactly one gateway has logged, in its current
// life, that it runs the checks (want: that one, or any when -1), and
// returns it.
func waitOwner(t *testing.T, gws []*clusterGW, want int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var owners []int
		for i, g := range gws {
			if !g.dead.Load() && strings.Contains(g.currentLog(), healthLeads) {
				owners = append(owners, i)
			}
		}
		if len(owners) > 1 {
			t.Fatalf("gateways %v all run the checks", owners)
		}
		if len(owners) == 1 && (want < 0 || owners[0] == want) {
			return owners[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no gateway runs the checks (want gw%d; owners %v)", want, owners)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// hostState reads ip's stored record with `director status --json`.
func hostState(t *testing.T, bin, conf, ip string) director.HostRecord {
	t.Helper()
	out, err := exec.Command(bin, "director", "status", "-c", conf, "--json").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("director status: %v: %s", err, ee.Stderr)
		}
		t.Fatalf("director status: %v", err)
	}
	var status struct {
		Hosts []director.HostRecord `json:"hosts"`
	}
	if err := json.Unmarshal(out, &status); err != nil {
		t.Fatalf("director status --json: %v\n%s", err, out)
	}
	for _, r := range status.Hosts {
		if r.IP == ip {
			return r
		}
	}
	t.Fatalf("no host %s in %s", ip, out)
	return director.HostRecord{}
}

// waitHost waits until ip is stored down (or up) and returns when it saw it.
func waitHost(t *testing.T, bin, conf, ip string, down bool, within time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if hostState(t, bin, conf, ip).Down == down {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not down=%v after %v", ip, down, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mustLogin logs user in through addr and returns the open session.
func mustLogin(t *testing.T, addr, user string) *tclient {
	t.Helper()
	c, err := tdial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.login(user); err != nil || !strings.HasPrefix(r, "OK") {
		c.close()
		t.Fatalf("login %s through %s: %q %v", user, addr, r, err)
	}
	return c
}

// restartBackend starts backend i again on its configuration after Kill.
func restartBackend(t *testing.T, e *env, i int) {
	t.Helper()
	d, err := harness.StartDovecot(e.backends[i].Opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	e.backends[i] = d
}

// TestHealthProbesDovecot runs every check kind against a real Dovecot
// 2.3 that refuses plaintext logins from the checker (not in
// login_trusted_networks, disable_plaintext_auth = yes) and offers TLS:
// the greetings parse, logins over TLS pass, a wrong password and an
// unknown LMTP recipient fail, and a cleartext login is the noted
// misconfiguration, not a failure.
func TestHealthProbesDovecot(t *testing.T) {
	dir := testDir(t)
	ca, err := harness.NewCA(dir, "test-ca")
	if err != nil {
		t.Fatal(err)
	}
	const ip = "127.0.0.63"
	tlsPorts := make([]int, 2)
	for i := range tlsPorts {
		if tlsPorts[i], err = harness.FreePort(ip); err != nil {
			t.Fatal(err)
		}
	}
	user := userName(0)
	e := startBackendsWith(t, []string{ip}, map[string]string{user: password(user)}, func(o *harness.DovecotOptions) {
		cert, key, err := ca.Issue(dir, "b63", ip)
		if err != nil {
			t.Fatal(err)
		}
		o.SSLCert, o.SSLKey, o.IMAPSPort, o.POP3SPort = cert, key, tlsPorts[0], tlsPorts[1]
		o.TrustedNetworks = "10.255.0.0/16"
		o.ExtraConf = "disable_plaintext_auth = yes\n"
	})
	pem, err := os.ReadFile(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	ports := map[string]int{"imap": e.port, "pop3": e.pop3Port, "lmtp": e.lmtpPort, "sieve": e.sievePort, "imaps": tlsPorts[0], "pop3s": tlsPorts[1]}
	st := memory.New()

	for _, tc := range []struct {
		check, proto, tls string
		user, pass        string
		fail, note        string // a part of the error / of the note; both empty: healthy
	}{
		{check: "tcp", proto: "imap"},
		{check: "tcp", proto: "imap", tls: "implicit"},
		{check: "banner", proto: "imap"},
		{check: "banner", proto: "pop3"},
		{check: "banner", proto: "lmtp"},
		{check: "banner", proto: "sieve"},
		{check: "banner", proto: "imap", tls: "starttls"},
		{check: "banner", proto: "lmtp", tls: "starttls"},
		{check: "login", proto: "imap", note: "LOGINDISABLED"},
		{check: "login", proto: "pop3", note: "Plaintext authentication disallowed"},
		{check: "login", proto: "sieve", note: "ManageSieve"},
		{check: "login", proto: "lmtp"},
		{check: "login", proto: "lmtp", user: "nobody@example.com", fail: "RCPT TO:<nobody@example.com>: want 250"},
		{check: "login", proto: "imap", tls: "starttls"},
		{check: "login", proto: "imap", tls: "implicit"},
		{check: "login", proto: "pop3", tls: "starttls"},
		{check: "login", proto: "pop3", tls: "implicit"},
		{check: "login", proto: "sieve", tls: "starttls"},
		{check: "login", proto: "lmtp", tls: "starttls"},
		{check: "login", proto: "imap", tls: "starttls", pass: "wrong", fail: "LOGIN as " + user + `: "NO [AUTHENTICATIONFAILED]`},
		{check: "login", proto: "pop3", tls: "starttls", pass: "wrong", fail: "PASS for " + user + `: "-ERR [AUTH]`},
		{check: "login", proto: "sieve", tls: "starttls", pass: "wrong", fail: "AUTHENTICATE as " + user + `: "NO`},
	} {
		name := strings.TrimSpace(tc.check + " " + tc.proto + " " + tc.tls + " " + tc.user + " " + tc.pass)
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			u, p := user, password(user)
			if tc.user != "" {
				u = tc.user
			}
			if tc.pass != "" {
				p = tc.pass
			}
			port := ports[tc.proto]
			if tc.tls == "implicit" {
				port = ports[tc.proto+"s"]
			}
			cfg := health.Config{
				Check: tc.check, Protocol: tc.proto, TLS: tc.tls, TLSConfig: &tls.Config{RootCAs: roots},
				Port: func(string) int { return port }, LoginUser: u, LoginPassword: p,
				Hosts: health.StoreHosts{Store: st}, Elector: st,
			}
			c, err := health.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := c.Check(context.Background(), ip)
			t.Logf("ok=%v latency=%v error=%q note=%q", r.OK, r.Latency, r.Error, r.Note)
			switch {
			case tc.fail == "" && !r.OK:
				t.Fatalf("want healthy, got %s", r.Error)
			case tc.fail != "" && (r.OK || !strings.Contains(r.Error, tc.fail)):
				t.Fatalf("want a failure with %q, got ok=%v %q", tc.fail, r.OK, r.Error)
			case !strings.Contains(r.Note, tc.note) || (tc.note == "") != (r.Note == ""):
				t.Fatalf("want a note with %q, got %q", tc.note, r.Note)
			}
		})
	}
}
