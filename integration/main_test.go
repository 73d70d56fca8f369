// SPDX-License-Identifier: Apache-2.0

// Package integration holds black-box tests: real Dovecot 2.3 backends and
// the real maildirector binary, started as private child processes on
// loopback addresses, driven by real clients.
package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/integration/harness"
)

var (
	raceEnabled bool // set by race_test.go
	buildOnce   sync.Once
	gwBin       string
	buildErr    error
	rootDir     string
)

func TestMain(m *testing.M) {
	var err error
	// A short root: Dovecot's UNIX socket paths must stay under 108 bytes.
	rootDir, err = os.MkdirTemp("/tmp", "mdit-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Chmod(rootDir, 0o755)
	code := m.Run()
	if code == 0 {
		os.RemoveAll(rootDir)
	} else {
		fmt.Fprintf(os.Stderr, "integration: logs kept in %s\n", rootDir)
	}
	os.Exit(code)
}

// requireTools skips the test when a program is missing, and fails it
// instead when CI is set: CI must never pass by skipping.
func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	harness.RequireTools(t, tools...)
}

// gatewayBinary builds maildirector once per test run.
func gatewayBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		var flags []string
		if raceEnabled {
			flags = append(flags, "-race")
		}
		gwBin, buildErr = harness.BuildGateway(rootDir, flags...)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return gwBin
}

// testDir returns a fresh directory for one test under the run's root.
func testDir(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	dir := filepath.Join(rootDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// env is a set of Dovecot backends sharing one mail root, and a gateway.
type env struct {
	dir      string
	backends []*harness.Dovecot
	port     int // IMAP port shared by all backends
	// pop3Port, lmtpPort and sievePort: the other protocols' ports,
	// shared by all backends too.
	pop3Port, lmtpPort, sievePort int
	users                         map[string]string
	gw                            *harness.Gateway
	gwAddr                        string
	hosts                         []director.Host
	// backendTimeout is the gateway's backend.timeout ("10s" when empty).
	backendTimeout string
	// limits is the gateway's limits section; empty means no failure
	// delay and no penalty, so that tests with wrong passwords stay fast
	// ("{}" gives the defaults).
	limits string
	// backendExtra is YAML added to the gateway's backend section
	// ("  tls_ca_file: ...\n").
	backendExtra string
	// dataDir is the gateway's director.data_dir (a new short temporary
	// directory when empty); directorExtra is YAML added to its director
	// section ("  store: etcd\n  etcd: {...}\n").
	dataDir, directorExtra string
}

// userName is the i-th test user.
func userName(i int) string { return fmt.Sprintf("user%03d@example.com", i) }

// password is a user's password on the backends.
func password(user string) string { return "pw-" + user }

// startBackends starts one Dovecot per IP, all on one port and one mail root.
func startBackends(t testing.TB, ips []string, nUsers int) *env {
	t.Helper()
	users := map[string]string{}
	for i := 0; i < nUsers; i++ {
		users[userName(i)] = password(userName(i))
	}
	return startBackendsWith(t, ips, users)
}

// startBackendsWith starts the backends with the given users and
// passwords; mods adjust each backend's options.
func startBackendsWith(t testing.TB, ips []string, users map[string]string, mods ...func(*harness.DovecotOptions)) *env {
	t.Helper()
	requireTools(t, "dovecot", "doveadm")
	e := &env{dir: testDir(t), users: users}
	ports, err := harness.FreePorts(4, ips...)
	if err != nil {
		t.Fatal(err)
	}
	e.port, e.pop3Port, e.lmtpPort, e.sievePort = ports[0], ports[1], ports[2], ports[3]
	for _, ip := range ips {
		o := harness.DovecotOptions{
			IP: ip, IMAPPort: e.port, POP3Port: e.pop3Port, LMTPPort: e.lmtpPort, SievePort: e.sievePort,
			Dir:      filepath.Join(e.dir, "b"+ip[strings.LastIndexByte(ip, '.')+1:]),
			MailRoot: filepath.Join(e.dir, "mail"),
			Users:    e.users,
		}
		for _, m := range mods {
			m(&o)
		}
		d, err := harness.StartDovecot(o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Stop)
		e.backends = append(e.backends, d)
	}
	hosts, err := director.ParseHosts(ips)
	if err != nil {
		t.Fatal(err)
	}
	e.hosts = hosts
	return e
}

// startGateway runs maildirector in front of e's backends with one
// cleartext IMAP listener on 127.0.0.1. passdbArgs is the static passdb's
// args; extra is appended to the YAML (clients from other loopback
// addresses than the gateway's need "trusted_networks" or
// "allow_plaintext" there to log in without TLS).
func (e *env) startGateway(t testing.TB, passdbArgs, extra string) {
	t.Helper()
	gwPort, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(gwPort)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: imap, address: %q}\n", e.gwAddr), passdbArgs, extra)
}

// staticPassdb is the YAML list item of a static passdb with args.
func staticPassdb(args string) string {
	return fmt.Sprintf("  - driver: static\n    args: %s\n", args)
}

// startGatewayWith runs maildirector with the given listener list (YAML
// items) and waits for e.gwAddr. passdbArgs is a static passdb's args, or
// a whole passdb list when it starts with "  - ".
// shortTempDir returns a new directory under /tmp with a short path,
// removed when t ends.
func shortTempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "md")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func (e *env) startGatewayWith(t testing.TB, listeners, passdbArgs, extra string) {
	t.Helper()
	bin := gatewayBinary(t)
	timeout := e.backendTimeout
	if timeout == "" {
		timeout = "10s"
	}
	limits := e.limits
	if limits == "" {
		limits = "{auth_failure_delay: 0s, auth_penalty_max: 0s}"
	}
	var backends []string
	for _, b := range e.backends {
		backends = append(backends, b.Opts.IP)
	}
	passdbs := passdbArgs
	if !strings.HasPrefix(passdbArgs, "  - ") {
		passdbs = staticPassdb(passdbArgs)
	}
	// Every gateway keeps its director state in an embedded etcd member
	// of its own (the default store), in a short directory: the member's
	// UNIX socket path must fit in 108 bytes.
	dataDir := e.dataDir
	if dataDir == "" {
		dataDir = shortTempDir(t)
	}
	yaml := fmt.Sprintf(`listen:
%spassdb:
%sdirector:
  backends: [%s]
  user_expire: 15m
  data_dir: %s
%sbackend:
  ports: {imap: %d, pop3: %d, lmtp: %d, sieve: %d}
  timeout: %s
%slimits: %s
%s`, listeners, passdbs, strings.Join(backends, ", "), dataDir, e.directorExtra, e.port, e.pop3Port, e.lmtpPort, e.sievePort, timeout, e.backendExtra, limits, extra)
	gw, err := harness.StartGateway(bin, e.dir, yaml, e.gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	t.Cleanup(func() {
		gw.Stop()
		// The binary's own complaints fail the test that provoked them.
		for _, bad := range []string{"WARNING: DATA RACE", "panic"} {
			if strings.Contains(gw.Log(), bad) {
				t.Errorf("the gateway log contains %q", bad)
			}
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", lastLines(gw.Log(), 40))
		}
	})
}

// ringBackend is the backend Dovecot 2.3's Director would choose for user
// (the ring is checked against a real Director in package director).
func (e *env) ringBackend(user string) string {
	ip, _ := director.NewRing(e.hosts).Lookup(director.UserHash(auth.LowerASCII(user)))
	return ip
}

func (e *env) backendByIP(ip string) *harness.Dovecot {
	for _, b := range e.backends {
		if b.Opts.IP == ip {
			return b
		}
	}
	return nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func parseHosts(ips ...string) ([]director.Host, error) { return director.ParseHosts(ips) }
