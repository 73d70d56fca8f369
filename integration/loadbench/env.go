// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/integration/harness"
)

// backendIPs are the two private Dovecot backends every target reaches.
var backendIPs = []string{"127.0.0.11", "127.0.0.12"}

// Target names: the reference and the proxies in front of it.
const (
	direct       = "direct"
	maildirector = "maildirector"
	dovecotDir   = "dovecot-director"
	nginx        = "nginx"
)

// target is one way for a client to reach the backends.
type target struct {
	name string
	// addrs maps a protocol ("imap", "imaps", "pop3", "sieve", "lmtp") to
	// the proxy's listener; empty for direct, which goes to the user's
	// backend.
	addrs map[string]string
	// pids returns the processes that make up the proxy (nil for direct).
	pids func() []int
	// cannot says why a protocol is not offered ("nginx proxies no
	// ManageSieve").
	cannot map[string]string
	// skip says why the target cannot be measured at all.
	skip string
	// restart starts the proxy afresh (the idle case measures a fresh
	// process: memory that earlier sessions left free in its allocator
	// would otherwise take new sessions without growing it).
	restart func() error
}

// env is what a run starts: the backends, the users, and the targets.
type env struct {
	o        *options
	dir      string
	bin      string
	cert     string
	key      string
	mailRoot string
	backends []*harness.Dovecot
	hosts    []director.Host
	// placement is the ring of the backends, made once: looking a user up
	// costs the load generator next to nothing.
	placement *director.Ring
	// ports are the backends' ports, the same on both addresses.
	ports map[string]int
	// users are the users of the login, LMTP and idle cases, half of them
	// on each backend; byBackend holds them per backend IP.
	users     []string
	byBackend map[string][]string
	// fetchUser holds one 10 MB message; appendUser receives APPENDs.
	fetchUser, appendUser string
	// newUsers have never logged in anywhere (the cluster case's new-user
	// logins); their maildirs exist, so that no backend pays for creating
	// one.
	newUsers []string
	// big is the 10 MB message (made when a case needs it).
	big     []byte
	targets []*target
	// measurements are made once (cases share them); memo holds their
	// results by key, target and repetition.
	measurements map[string]*measurement
	memo         map[string]map[string][]obs
	// skipped says why a peer is not in the run.
	skipped map[string]string
	stops   []func()
}

func password(user string) string { return "pw-" + user }

// ring is the backend Dovecot 2.3's Director, and maildirector, place a
// user on when nothing else is known about it.
func (e *env) ring(user string) string {
	ip, _ := e.placement.Lookup(director.UserHash(auth.LowerASCII(user)))
	return ip
}

// addr returns where a client of t connects for protocol p as user.
func (e *env) addr(t *target, p, user string) string {
	if t.addrs == nil {
		return net.JoinHostPort(e.ring(user), strconv.Itoa(e.ports[p]))
	}
	return t.addrs[p]
}

func (e *env) stop() {
	for i := len(e.stops) - 1; i >= 0; i-- {
		e.stops[i]()
	}
	e.stops = nil
	// Last: the proxies in front of them are gone. Not in stops, as the
	// idle case restarts them.
	for _, b := range e.backends {
		b.Stop()
	}
}

// pickUsers returns n users, n/2 on each backend by the ring.
func (e *env) pickUsers(n int) {
	e.byBackend = map[string][]string{}
	for i := 0; len(e.users) < n; i++ {
		u := fmt.Sprintf("user%04d@example.com", i)
		ip := e.ring(u)
		if len(e.byBackend[ip]) < n/len(backendIPs) {
			e.byBackend[ip] = append(e.byBackend[ip], u)
			e.users = append(e.users, u)
		}
	}
}

// setup starts the backends, the gateway and the peers that are installed.
func setup(o *options) (*env, error) {
	e := &env{o: o, dir: o.dir, skipped: map[string]string{}, ports: map[string]int{},
		measurements: map[string]*measurement{}, memo: map[string]map[string][]obs{}}
	e.mailRoot = filepath.Join(e.dir, "mail")
	var err error
	if e.hosts, err = director.ParseHosts(backendIPs); err != nil {
		return nil, err
	}
	e.placement = director.NewRing(e.hosts)
	for _, tool := range []string{"dovecot", "doveadm"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%s is not installed (Debian: dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd dovecot-managesieved): the backends need it", tool)
		}
	}
	e.pickUsers(64)
	e.fetchUser, e.appendUser = "fetch@example.com", "append@example.com"
	if o.has("cluster") {
		for i := 0; i < o.newUsers; i++ {
			e.newUsers = append(e.newUsers, fmt.Sprintf("new%05d@example.com", i))
		}
	}
	users := map[string]string{}
	for _, u := range append(append([]string{e.fetchUser, e.appendUser}, e.users...), e.newUsers...) {
		users[u] = password(u)
	}
	if e.cert, e.key, err = harness.WriteSelfSignedCert(e.dir, "localhost", "127.0.0.1"); err != nil {
		return nil, err
	}
	for _, p := range []string{"imap", "imaps", "pop3", "lmtp", "sieve"} {
		if e.ports[p], err = harness.FreePort(backendIPs...); err != nil {
			return nil, err
		}
	}
	for _, ip := range backendIPs {
		d, err := harness.StartDovecot(harness.DovecotOptions{
			IP: ip, IMAPPort: e.ports["imap"], IMAPSPort: e.ports["imaps"], POP3Port: e.ports["pop3"],
			LMTPPort: e.ports["lmtp"], SievePort: e.ports["sieve"],
			SSLCert: e.cert, SSLKey: e.key,
			Dir:      filepath.Join(e.dir, "backend-"+ip),
			MailRoot: e.mailRoot, Users: users,
			// POP3 and ManageSieve mail processes are reused, as the
			// harness does for IMAP: a login then costs the backend its
			// login path, not a fork and exec, and the proxies' share
			// shows.
			ExtraConf: "service pop3 {\n  service_count = 0\n  process_min_avail = 4\n}\nservice managesieve {\n  service_count = 0\n  process_min_avail = 4\n}\n",
		})
		if err != nil {
			e.stop()
			return nil, err
		}
		e.backends = append(e.backends, d)
	}
	if err := makeMaildirs(e.mailRoot, e.newUsers); err != nil {
		e.stop()
		return nil, err
	}
	e.targets = append(e.targets, &target{name: direct, cannot: map[string]string{}})
	logf("building maildirector (no -race)")
	if e.bin, err = harness.BuildGateway(e.dir); err != nil {
		e.stop()
		return nil, err
	}
	gw, err := e.startGateway()
	if err != nil {
		e.stop()
		return nil, err
	}
	e.targets = append(e.targets, gw)
	// The cluster case starts gateways of its own; the peers serve the
	// other cases.
	mainCases := len(o.cases) > 1 || !o.has("cluster")
	if o.peer(dovecotDir) && mainCases {
		if why := directorMissing(); why != "" {
			e.skipped[dovecotDir] = why
		} else if t, err := e.startDirector(); err != nil {
			e.stop()
			return nil, err
		} else {
			e.targets = append(e.targets, t)
		}
	}
	if o.peer(nginx) && mainCases {
		if !harness.NginxInstalled() {
			e.skipped[nginx] = "nginx or its mail module is not installed (Debian: apt-get install nginx-light libnginx-mod-mail)"
		} else if t, err := e.startNginx(); err != nil {
			e.stop()
			return nil, err
		} else {
			e.targets = append(e.targets, t)
		}
	}
	if err := e.checkPlacement(); err != nil {
		e.stop()
		return nil, err
	}
	return e, nil
}

// checkPlacement makes sure every proxy places users where direct clients
// reach them: for each proxy and backend, a user the ring puts there logs
// in through the proxy, and the backends say where its session is.
func (e *env) checkPlacement() error {
	for k, t := range e.targets {
		if t.addrs == nil || t.addrs["imap"] == "" {
			continue
		}
		for _, ip := range backendIPs {
			u := e.byBackend[ip][k]
			c, err := imapSession(t.addrs["imap"], 0, false, u)
			if err != nil {
				return fmt.Errorf("%s: a first login of %s: %w", t.name, u, err)
			}
			var on []string
			for _, b := range e.backends {
				who, err := b.Who()
				if err != nil {
					c.close()
					return err
				}
				for _, w := range who {
					if w.User == u {
						on = append(on, b.Opts.IP)
						break
					}
				}
			}
			c.close()
			if len(on) != 1 || on[0] != ip {
				return fmt.Errorf("%s placed %s on %v, the ring (and so direct) on %s: the targets would not do the same work", t.name, u, on, ip)
			}
		}
	}
	logf("placement checked: every proxy puts users on the backend direct clients reach")
	// Every user logs in once through every target before anything is
	// timed: the director's assignments exist (a first placement is the
	// cluster case's subject), the backends' processes and indexes are warm.
	for _, t := range e.targets {
		for i, u := range e.users {
			if _, err := oneLogin("imap", e.addr(t, "imap", u), i, u); err != nil {
				return fmt.Errorf("%s: warm-up login of %s: %w", t.name, u, err)
			}
		}
	}
	return nil
}

// freeAddrs returns a free 127.0.0.1 address for each protocol.
func freeAddrs(protos ...string) (map[string]string, error) {
	m := map[string]string{}
	for _, p := range protos {
		port, err := harness.FreePort("127.0.0.1")
		if err != nil {
			return nil, err
		}
		m[p] = "127.0.0.1:" + strconv.Itoa(port)
	}
	return m, nil
}

// gatewayYAML is a gateway's configuration as a site would write it for
// this setup: a static passdb that leaves the password to the backend,
// the clients' network trusted (their address forwarded, plaintext
// allowed), no per-user-and-address session limit (Dovecot's Director has
// none at the login either; the backends apply theirs), log level warn.
func (e *env) gatewayYAML(listeners map[string]string, dataDir, directorExtra string) string {
	var l strings.Builder
	for _, p := range []string{"imap", "imaps", "pop3", "sieve", "lmtp"} {
		if a, ok := listeners[p]; ok {
			fmt.Fprintf(&l, "  - {protocol: %s, address: %q}\n", p, a)
		}
	}
	return fmt.Sprintf(`listen:
%spassdb:
  - driver: static
    args: proxy=y nopassword=y
trusted_networks: [127.0.0.0/8]
tls: {cert: %q, key: %q}
director:
  backends: [%s]
  data_dir: %s
%sbackend:
  ports: {imap: %d, pop3: %d, lmtp: %d, sieve: %d}
limits: {max_userip_connections: 0}
log: {level: warn}
`, l.String(), e.cert, e.key, strings.Join(backendIPs, ", "), dataDir, directorExtra,
		e.ports["imap"], e.ports["pop3"], e.ports["lmtp"], e.ports["sieve"])
}

// startGateway runs maildirector with its default store (the embedded etcd
// member) and a listener per protocol.
func (e *env) startGateway() (*target, error) {
	addrs, err := freeAddrs("imap", "imaps", "pop3", "sieve", "lmtp")
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(e.dir, "gateway")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	data, err := shortDir()
	if err != nil {
		return nil, err
	}
	gw, err := harness.StartGateway(e.bin, dir, e.gatewayYAML(addrs, data, ""), addrs["imap"])
	if err != nil {
		return nil, err
	}
	e.stops = append(e.stops, func() { gw.Stop(); os.RemoveAll(data) })
	return &target{name: maildirector, addrs: addrs, cannot: map[string]string{},
		pids: func() []int { return []int{gw.Pid()} },
		restart: func() error {
			g, err := gw.Restart(addrs["imap"])
			if err == nil {
				gw = g
			}
			return err
		}}, nil
}

// shortDir is a new directory under /tmp: the embedded member's UNIX
// socket path must fit in 108 bytes.
func shortDir() (string, error) { return os.MkdirTemp("", "mdb") }

// directorMissing says why Dovecot's Director cannot run here ("" when it
// can): Dovecot 2.4 has none.
func directorMissing() string {
	out, err := exec.Command("dovecot", "--version").Output()
	if err != nil {
		return "dovecot --version: " + err.Error()
	}
	if !strings.HasPrefix(string(out), "2.3.") {
		return "Dovecot " + strings.TrimSpace(string(out)) + " has no Director (2.3 has)"
	}
	return ""
}

// startDirector runs Dovecot 2.3's Director in proxy mode in front of the
// same backends.
func (e *env) startDirector() (*target, error) {
	addrs, err := freeAddrs("imap", "imaps", "pop3", "sieve", "lmtp")
	if err != nil {
		return nil, err
	}
	port := func(p string) int { return hostPort(addrs[p]) }
	dir, err := shortDir()
	if err != nil {
		return nil, err
	}
	d, err := harness.StartDirector(harness.DirectorOptions{
		Dir: dir, MailServers: strings.Join(backendIPs, " "),
		IMAPPort: port("imap"), IMAPSPort: port("imaps"), POP3Port: port("pop3"), SievePort: port("sieve"), LMTPPort: port("lmtp"),
		SSLCert: e.cert, SSLKey: e.key,
		Backend: harness.BackendPorts{IMAP: e.ports["imap"], POP3: e.ports["pop3"], Sieve: e.ports["sieve"], LMTP: e.ports["lmtp"]},
	})
	if err != nil {
		return nil, err
	}
	e.stops = append(e.stops, func() { d.Stop(); os.RemoveAll(dir) })
	return &target{name: dovecotDir, addrs: addrs, cannot: map[string]string{},
		pids: func() []int { return harness.ProcessTree(d.Pid()) },
		restart: func() error {
			d.Stop()
			n, err := harness.StartDirector(d.Opts)
			if err == nil {
				d = n
			}
			return err
		}}, nil
}

// startNginx runs nginx's mail proxy in front of the same backends; its
// auth_http answers with the user's backend by the same ring.
func (e *env) startNginx() (*target, error) {
	addrs, err := freeAddrs("imap", "imaps", "pop3")
	if err != nil {
		return nil, err
	}
	port := func(p string) int { return hostPort(addrs[p]) }
	n, err := harness.StartNginx(harness.NginxOptions{
		Dir:      filepath.Join(e.dir, "nginx"),
		IMAPPort: port("imap"), IMAPSPort: port("imaps"), POP3Port: port("pop3"),
		SSLCert: e.cert, SSLKey: e.key,
		Route: func(user, proto string) (string, int, error) {
			p, ok := e.ports[proto]
			if !ok {
				return "", 0, fmt.Errorf("no backend port for %q", proto)
			}
			return e.ring(user), p, nil
		},
	})
	if err != nil {
		return nil, err
	}
	e.stops = append(e.stops, n.Stop)
	return &target{name: nginx, addrs: addrs,
		cannot: map[string]string{"sieve": "nginx proxies no ManageSieve", "lmtp": "nginx proxies no LMTP"},
		pids:   func() []int { return harness.ProcessTree(n.Pid()) },
		restart: func() error {
			n.Stop()
			m, err := harness.StartNginx(n.Opts)
			if err == nil {
				n = m
			}
			return err
		}}, nil
}

// makeMaildirs creates users' maildirs as Dovecot would on a first login
// (owned by the backends' mail user).
func makeMaildirs(root string, users []string) error {
	uid, gid := os.Getuid(), os.Getgid()
	if uid == 0 {
		uid, gid = 65534, 65534 // harness.StartDovecot serves mail as nobody
	}
	for _, u := range users {
		home := filepath.Join(root, u)
		for _, d := range []string{home, filepath.Join(home, "Maildir"), filepath.Join(home, "Maildir", "cur"), filepath.Join(home, "Maildir", "new"), filepath.Join(home, "Maildir", "tmp")} {
			if err := os.Mkdir(d, 0o700); err != nil && !os.IsExist(err) {
				return err
			}
			if err := os.Chown(d, uid, gid); err != nil {
				return err
			}
		}
	}
	return nil
}
