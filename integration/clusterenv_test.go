// SPDX-License-Identifier: Apache-2.0

package integration

// Helpers of the cluster tests (cluster_test.go, chaos_test.go): several
// gateways in front of one set of backends, each with its own directory,
// configuration and log, killed and restarted at will; clients that
// report failures instead of failing the test (a kicked session is an
// outcome there, not an error); what the backends say about who is where.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/integration/harness"
)

// clusterGWConf describes one gateway of a cluster.
type clusterGWConf struct {
	name string
	// backends is the file's director.backends (it only seeds an empty
	// store).
	backends []string
	// lmtp adds an LMTP listener.
	lmtp bool
	// director is YAML added to the director section: the store lines
	// ("  store: etcd\n  etcd: {...}\n").
	director string
	// userExpire is director.user_expire ("15m" when empty).
	userExpire string
}

// clusterGW is one running gateway of a cluster test, restartable on the
// same configuration after a SIGKILL.
type clusterGW struct {
	name               string
	dir                string // its configuration and log
	imapAddr, lmtpAddr string

	mu   sync.Mutex
	gw   *harness.Gateway
	gen  atomic.Int64 // lives started so far
	dead atomic.Bool  // killed and not restarted yet
}

// newClusterGW writes a gateway's configuration; start runs it.
func (e *env) newClusterGW(t testing.TB, c clusterGWConf) *clusterGW {
	t.Helper()
	g := &clusterGW{name: c.name, dir: filepath.Join(e.dir, "gw-"+c.name)}
	if err := os.MkdirAll(g.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	g.imapAddr = "127.0.0.1:" + strconv.Itoa(port)
	listeners := fmt.Sprintf("  - {protocol: imap, address: %q}\n", g.imapAddr)
	if c.lmtp {
		port, err := harness.FreePort("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		g.lmtpAddr = "127.0.0.1:" + strconv.Itoa(port)
		listeners += fmt.Sprintf("  - {protocol: lmtp, address: %q}\n", g.lmtpAddr)
	}
	expire := c.userExpire
	if expire == "" {
		expire = "15m"
	}
	yaml := fmt.Sprintf(`listen:
%spassdb:
%strusted_networks: [127.0.0.0/8]
director:
  backends: [%s]
  user_expire: %s
  data_dir: %s
  name: %s
%sbackend:
  ports: {imap: %d, pop3: %d, lmtp: %d, sieve: %d}
  timeout: 10s
lmtp: {timeout: 30s}
limits: {auth_failure_delay: 0s, auth_penalty_max: 0s, max_userip_connections: 0}
`, listeners, staticPassdb("proxy=y nopassword=y"), strings.Join(c.backends, ", "), expire, shortTempDir(t), c.name,
		c.director, e.port, e.pop3Port, e.lmtpPort, e.sievePort)
	if err := os.WriteFile(g.conf(), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.mu.Lock()
		gw := g.gw
		g.mu.Unlock()
		if gw != nil {
			gw.Stop()
		}
		log := g.log()
		for _, bad := range []string{"WARNING: DATA RACE", "panic:"} {
			if strings.Contains(log, bad) {
				t.Errorf("gateway %s: the log contains %q", g.name, bad)
			}
		}
		if t.Failed() {
			t.Logf("gateway %s log, last lines:\n%s", g.name, lastLines(log, 40))
		}
	})
	return g
}

// conf is the gateway's configuration file (the CLI may use it too).
func (g *clusterGW) conf() string { return filepath.Join(g.dir, "maildirector.yaml") }

// start runs the gateway, or runs it again after kill on the same
// configuration, and waits until its IMAP listener answers; it may be
// called from any goroutine.
func (g *clusterGW) start(bin string) error {
	var gw *harness.Gateway
	var err error
	if prev := g.current(); prev != nil {
		gw, err = prev.Restart(g.imapAddr)
	} else {
		var yaml []byte
		if yaml, err = os.ReadFile(g.conf()); err == nil {
			gw, err = harness.StartGateway(bin, g.dir, string(yaml), g.imapAddr)
		}
	}
	if err != nil {
		return fmt.Errorf("gateway %s: %w", g.name, err)
	}
	g.mu.Lock()
	g.gw = gw
	g.mu.Unlock()
	g.gen.Add(1)
	g.dead.Store(false)
	return nil
}

func (g *clusterGW) current() *harness.Gateway {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.gw
}

// kill ends the gateway with SIGKILL.
func (g *clusterGW) kill() {
	g.dead.Store(true)
	if gw := g.current(); gw != nil {
		gw.Kill()
	}
}

// log returns the gateway's log over all its lives.
func (g *clusterGW) log() string {
	gw := g.current()
	if gw == nil {
		return ""
	}
	return gw.EarlierLogs() + gw.Log()
}

// currentLog returns the log of the gateway's current life only.
func (g *clusterGW) currentLog() string {
	if gw := g.current(); gw != nil {
		return gw.Log()
	}
	return ""
}

// startAll starts gateways concurrently (peered embedded members need a
// quorum before any of them serves).
func startAll(t testing.TB, bin string, gws ...*clusterGW) {
	t.Helper()
	errs := make([]error, len(gws))
	var wg sync.WaitGroup
	for i, g := range gws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.start(bin)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// directorCLI runs `maildirector director ARGS... -c conf`.
func directorCLI(bin, conf string, args ...string) (string, error) {
	return directorCLIWithin(bin, conf, 90*time.Second, args...)
}

// directorCLIWithin is directorCLI with the command's -timeout (how long
// it waits for a move to finish).
func directorCLIWithin(bin, conf string, timeout time.Duration, args ...string) (string, error) {
	verb, rest := args[0], args[1:]
	argv := append([]string{"director", verb, "-c", conf, "-timeout", timeout.String()}, rest...)
	out, err := exec.Command(bin, argv...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("maildirector %s: %v: %s", strings.Join(argv, " "), err, out)
	}
	return string(out), nil
}

// storedHosts reads the backends from the store with `director status
// --json`.
func storedHosts(t testing.TB, bin, conf string) []director.Host {
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
		Hosts []struct {
			director.HostRecord
			Users int `json:"users"`
		} `json:"hosts"`
	}
	if err := json.Unmarshal(out, &status); err != nil {
		t.Fatalf("director status --json: %v\n%s", err, out)
	}
	var hosts []director.Host
	for _, r := range status.Hosts {
		hosts = append(hosts, r.Host)
	}
	return hosts
}

// ringOf is the backend Dovecot 2.3's ring names for user among hosts.
func ringOf(hosts []director.Host, user string) string {
	ip, _ := director.NewRing(hosts).Lookup(director.UserHash(auth.LowerASCII(user)))
	return ip
}

// backendLoginRe matches a backend's log line for an IMAP login.
var backendLoginRe = regexp.MustCompile(`imap-login: Info: Login: user=<([^>]*)>`)

// backendLogins reads every backend's log: user -> backend -> logins. It
// waits (up to 10s) until there are at least min logins in all, since
// Dovecot's log process writes a moment after the login.
func (e *env) backendLogins(min int) map[string]map[string]int {
	deadline := time.Now().Add(10 * time.Second)
	for {
		seen := map[string]map[string]int{}
		total := 0
		for _, b := range e.backends {
			for _, m := range backendLoginRe.FindAllStringSubmatch(b.Log(), -1) {
				if seen[m[1]] == nil {
					seen[m[1]] = map[string]int{}
				}
				seen[m[1]][b.Opts.IP]++
				total++
			}
		}
		if total >= min || time.Now().After(deadline) {
			return seen
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// sessionsNow asks every backend's anvil, at once, who has sessions:
// user -> backend -> sessions.
func (e *env) sessionsNow(ctx context.Context) (map[string]map[string]int, error) {
	type res struct {
		ip  string
		m   map[string]int
		err error
	}
	ch := make(chan res, len(e.backends))
	for _, b := range e.backends {
		go func() {
			m, err := b.Sessions(ctx)
			ch <- res{b.Opts.IP, m, err}
		}()
	}
	out := map[string]map[string]int{}
	var errs []error
	for range e.backends {
		r := <-ch
		if r.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", r.ip, r.err))
			continue
		}
		for u, n := range r.m {
			if out[u] == nil {
				out[u] = map[string]int{}
			}
			out[u][r.ip] += n
		}
	}
	return out, errors.Join(errs...)
}

func backendsOf(m map[string]int) []string {
	var out []string
	for ip := range m {
		out = append(out, ip)
	}
	sort.Strings(out)
	return out
}

// tclient is an IMAP client that reports what happened instead of failing
// the test: in a cluster test a closed connection is an outcome.
type tclient struct {
	conn net.Conn
	r    *bufio.Reader
	n    int
	// gw and gen: the gateway and its life this session went through.
	gw  int
	gen int64
}

// tdial connects to an IMAP listener and reads the greeting.
func tdial(addr string) (*tclient, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &tclient{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	g, err := c.r.ReadString('\n')
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("greeting: %w", err)
	}
	if !strings.HasPrefix(g, "* OK") {
		conn.Close()
		return nil, fmt.Errorf("greeting %q", g)
	}
	return c, nil
}

func (c *tclient) close() { c.conn.Close() }

// do sends a tagged command and returns its tagged status (without tag).
func (c *tclient) do(format string, args ...any) (string, error) {
	c.n++
	tag := "t" + strconv.Itoa(c.n)
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c.conn, tag+" "+fmt.Sprintf(format, args...)+"\r\n"); err != nil {
		return "", err
	}
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return strings.TrimRight(rest, "\r\n"), nil
		}
	}
}

func (c *tclient) login(user string) (string, error) {
	return c.do("LOGIN %s %s", quoted(user), quoted(password(user)))
}

// tlmtp is an LMTP client that reports errors instead of failing the test.
type tlmtp struct {
	conn net.Conn
	r    *bufio.Reader
}

func tdialLMTP(addr string) (*tlmtp, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &tlmtp{conn: conn, r: bufio.NewReader(conn)}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if g, err := c.reply(); err != nil || !strings.HasPrefix(g, "220") {
		conn.Close()
		return nil, fmt.Errorf("greeting %q: %v", g, err)
	}
	return c, nil
}

func (c *tlmtp) close() { c.conn.Close() }

func (c *tlmtp) reply() (string, error) {
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			return "", err
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 4 || l[3] != '-' {
			return l, nil
		}
	}
}

func (c *tlmtp) cmd(format string, args ...any) (string, error) {
	if _, err := fmt.Fprintf(c.conn, format+"\r\n", args...); err != nil {
		return "", err
	}
	return c.reply()
}

// maildirMessageIDs counts, in every user's maildir on the shared mail
// root (new, cur and tmp), the messages whose Message-ID starts with
// prefix: "user/id" -> copies.
func (e *env) maildirMessageIDs(prefix string) map[string]int {
	count := map[string]int{}
	users, _ := os.ReadDir(filepath.Join(e.dir, "mail"))
	for _, u := range users {
		for _, sub := range []string{"new", "cur", "tmp"} {
			files, _ := filepath.Glob(filepath.Join(e.dir, "mail", u.Name(), "Maildir", sub, "*"))
			for _, f := range files {
				data, err := os.ReadFile(f)
				if err != nil {
					continue
				}
				s := string(data)
				i := strings.Index(s, "Message-ID: <"+prefix)
				if i < 0 {
					continue
				}
				id := s[i+len("Message-ID: <"):]
				if j := strings.IndexByte(id, '>'); j >= 0 {
					count[u.Name()+"/"+id[:j]]++
				}
			}
		}
	}
	return count
}
