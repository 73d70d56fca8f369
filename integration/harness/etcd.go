// SPDX-License-Identifier: Apache-2.0

package harness

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// EtcdOptions tune StartEtcd and StartEtcdCluster; the zero value is fine.
type EtcdOptions struct {
	// Dir holds one subdirectory per member (data directory, log). Empty:
	// a t.TempDir(), which goes when the test ends (the tail of each
	// member's log is printed when the test fails).
	Dir string
	// IPs are the members' loopback addresses, one per member. Empty:
	// 127.0.0.31 for the first member, 127.0.0.32 for the second ...
	IPs []string
	// HeartbeatInterval and ElectionTimeout are raft's timings (etcd's
	// defaults, 100ms and 1s, when zero). Shorter elections make a
	// chaos test faster, but a loaded 2-core machine under -race then
	// sees needless elections.
	HeartbeatInterval, ElectionTimeout time.Duration
	// LogLevel is etcd's --log-level (debug, info, warn, error); "info"
	// when empty.
	LogLevel string
	// StartTimeout bounds the wait for the members to answer /health
	// (30s when zero).
	StartTimeout time.Duration
}

// Etcd is one member of a private etcd cluster (Debian's etcd-server 3.4,
// a child process): its own data directory and log, its own loopback
// address, free client and peer ports. It can be stopped, killed, frozen
// and restarted on the same data directory and ports.
type Etcd struct {
	Name    string // member name, e.g. "m0"
	IP      string
	Client  int // client port
	Peer    int // peer port
	Dir     string
	DataDir string
	LogPath string

	argv    []string
	timeout time.Duration

	mu   sync.Mutex
	proc *daemon
}

// EtcdCluster is a private etcd cluster of several members.
type EtcdCluster struct {
	Members []*Etcd
}

// StartEtcd starts a one-member etcd cluster and waits until it is healthy.
// The member is killed when the test ends. When the etcd binary is
// missing, the test is skipped (failed when CI is set).
func StartEtcd(t testing.TB, opts ...EtcdOptions) *Etcd {
	t.Helper()
	return StartEtcdCluster(t, 1, opts...).Members[0]
}

// StartEtcdCluster starts an n-member etcd cluster and waits until every
// member is healthy (a leader is elected and each member answers). The
// members are killed when the test ends.
func StartEtcdCluster(t testing.TB, n int, opts ...EtcdOptions) *EtcdCluster {
	t.Helper()
	RequireTools(t, "etcd")
	var o EtcdOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if n < 1 {
		t.Fatalf("etcd cluster of %d members", n)
	}
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = 30 * time.Second
	}
	c := &EtcdCluster{}
	var initial []string
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("127.0.0.%d", 31+i)
		if i < len(o.IPs) {
			ip = o.IPs[i]
		}
		client, err := FreePort(ip)
		if err != nil {
			t.Fatal(err)
		}
		peer := client
		for peer == client {
			if peer, err = FreePort(ip); err != nil {
				t.Fatal(err)
			}
		}
		name := fmt.Sprintf("m%d", i)
		dir := filepath.Join(o.Dir, "etcd-"+name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		m := &Etcd{
			Name: name, IP: ip, Client: client, Peer: peer, Dir: dir,
			DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, "etcd.log"),
			timeout: o.StartTimeout,
		}
		c.Members = append(c.Members, m)
		initial = append(initial, name+"="+m.PeerURL())
	}
	token := make([]byte, 8)
	rand.Read(token)
	for _, m := range c.Members {
		m.argv = []string{"etcd",
			"--name", m.Name,
			"--data-dir", m.DataDir,
			"--listen-client-urls", m.ClientURL(),
			"--advertise-client-urls", m.ClientURL(),
			"--listen-peer-urls", m.PeerURL(),
			"--initial-advertise-peer-urls", m.PeerURL(),
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			// distinct per cluster: a member of another test's cluster
			// that once had the same port is never taken for a peer
			"--initial-cluster-token", "harness-" + hex.EncodeToString(token),
			"--logger", "zap",
			"--log-outputs", "stderr",
			"--log-level", o.LogLevel,
		}
		if o.HeartbeatInterval > 0 {
			m.argv = append(m.argv, "--heartbeat-interval", strconv.FormatInt(o.HeartbeatInterval.Milliseconds(), 10))
		}
		if o.ElectionTimeout > 0 {
			m.argv = append(m.argv, "--election-timeout", strconv.FormatInt(o.ElectionTimeout.Milliseconds(), 10))
		}
	}
	t.Cleanup(func() {
		for _, m := range c.Members {
			m.Kill()
			if t.Failed() {
				b, _ := os.ReadFile(m.LogPath)
				t.Logf("etcd %s (%s) log, last lines:\n%s", m.Name, m.ClientURL(), tail(b, 30))
			}
		}
	})
	// All members first: none is healthy before a quorum runs.
	for _, m := range c.Members {
		if err := m.start(); err != nil {
			t.Fatalf("etcd %s: %v", m.Name, err)
		}
	}
	for _, m := range c.Members {
		if err := m.WaitHealthy(o.StartTimeout); err != nil {
			b, _ := os.ReadFile(m.LogPath)
			t.Fatalf("etcd %s on %s: %v\n%s", m.Name, m.ClientURL(), err, tail(b, 30))
		}
	}
	return c
}

// Endpoints returns the client URLs of every member ("http://ip:port").
func (c *EtcdCluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL())
	}
	return eps
}

// WaitHealthy waits until every running member is healthy: after a member
// went down, until the others have elected a leader (a put proposed
// during the election may be lost and time out after 7s).
func (c *EtcdCluster) WaitHealthy(timeout time.Duration) error {
	for _, m := range c.Members {
		if m.Running() {
			if err := m.WaitHealthy(timeout); err != nil {
				return fmt.Errorf("etcd %s: %w", m.Name, err)
			}
		}
	}
	return nil
}

// Member returns the i-th member.
func (c *EtcdCluster) Member(i int) *Etcd { return c.Members[i] }

// Endpoints returns this member's client URL, as a list for clientv3.Config.
func (e *Etcd) Endpoints() []string { return []string{e.ClientURL()} }

// ClientURL is the member's client URL, "http://ip:port".
func (e *Etcd) ClientURL() string { return "http://" + e.ClientAddr() }

// ClientAddr is the member's client address, "ip:port" (a CutProxy target).
func (e *Etcd) ClientAddr() string { return net.JoinHostPort(e.IP, strconv.Itoa(e.Client)) }

// PeerURL is the member's peer URL.
func (e *Etcd) PeerURL() string {
	return "http://" + net.JoinHostPort(e.IP, strconv.Itoa(e.Peer))
}

func (e *Etcd) start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc.alive() {
		return errors.New("already running")
	}
	p, err := startDaemon(e.LogPath, e.argv...)
	if err != nil {
		return err
	}
	e.proc = p
	return nil
}

func (e *Etcd) current() *daemon {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.proc
}

// Running reports whether the member's process is alive (frozen counts).
func (e *Etcd) Running() bool { return e.current().alive() }

// Healthy asks the member's /health endpoint once: nil when it answers
// {"health":"true"}, which etcd 3.4 gives when the member knows a leader
// and can serve a read.
func (e *Etcd) Healthy() error {
	hc := http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(e.ClientURL() + "/health")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var h struct {
		Health string `json:"health"`
	}
	if err := json.Unmarshal(body, &h); err != nil || h.Health != "true" {
		return fmt.Errorf("/health: %s %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// WaitHealthy waits until the member answers /health with "true". It fails
// at once when the process is not running.
func (e *Etcd) WaitHealthy(timeout time.Duration) error {
	p := e.current()
	if p == nil {
		return errors.New("not started")
	}
	return p.waitReady(timeout, e.Healthy)
}

// Stop terminates the member (SIGTERM, thawing it first) and waits for it,
// killing it after 10s. A stopped member can be restarted.
func (e *Etcd) Stop() { e.current().stop(10 * time.Second) }

// Kill ends the member at once (SIGKILL), as a crash would.
func (e *Etcd) Kill() { e.current().kill() }

// Freeze stops the member's process (SIGSTOP): its connections stay open,
// nothing answers. Thaw resumes it.
func (e *Etcd) Freeze() { e.current().signal(syscall.SIGSTOP) }

// Thaw resumes a frozen member.
func (e *Etcd) Thaw() { e.current().signal(syscall.SIGCONT) }

// Restart stops the member if it runs, starts it again on the same data
// directory and ports, and waits until it is healthy: in a cluster, that
// needs a quorum of members running. It returns an error rather than
// failing the test, so it may be called from any goroutine.
func (e *Etcd) Restart() error {
	e.Stop()
	if err := e.start(); err != nil {
		return fmt.Errorf("etcd %s: %w", e.Name, err)
	}
	if err := e.WaitHealthy(e.timeout); err != nil {
		return fmt.Errorf("etcd %s on %s after restart: %w", e.Name, e.ClientURL(), err)
	}
	return nil
}

// Log returns the member's log so far (every life of it).
func (e *Etcd) Log() string {
	b, _ := os.ReadFile(e.LogPath)
	return string(b)
}
