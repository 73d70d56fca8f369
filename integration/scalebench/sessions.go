// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

// sessionUsers is how many users the sessions are spread over (each
// user's sessions go to one backend, as the ring places it).
const sessionUsers = 1000

// sessionsResult is the gateway at each count of idle relayed sessions.
type sessionsResult struct {
	Store  string          `json:"gateway_store"`
	Points []sessionsPoint `json:"points"`
	Slope  sessionsPerEach `json:"per_session"`
	At100k sessionsAt100k  `json:"extrapolated_100k"`
	Limits []string        `json:"limits_for_100k"`
	// KernelPerSocketB is the kernel's memory (slab) per idle connected
	// loopback TCP socket, calibrated apart from the sessions.
	KernelPerSocketB float64 `json:"kernel_bytes_per_socket"`
	CalibrationPairs int     `json:"calibration_pairs"`
}

// sessionsPoint is one measurement.
type sessionsPoint struct {
	Sessions   int   `json:"sessions"`
	PSSKiB     int64 `json:"gateway_pss_kib"`
	RSSKiB     int64 `json:"gateway_rss_kib"`
	FDs        int   `json:"gateway_fds"`
	Threads    int   `json:"gateway_threads"`
	Goroutines int64 `json:"gateway_goroutines"`
	HeapInuse  int64 `json:"gateway_heap_inuse_bytes"`
	StackInuse int64 `json:"gateway_stack_inuse_bytes"`
	// The machine's kernel memory (every socket of the session, four on
	// this box: client, gateway's two, backend) and Dovecot's processes.
	SlabKiB       int64   `json:"machine_slab_kib"`
	TCPMemPages   int64   `json:"machine_tcp_mem_pages"`
	DovecotPSSKiB int64   `json:"dovecot_pss_kib"`
	OpenSeconds   float64 `json:"open_seconds"`
}

// sessionsPerEach is the least-squares slope over the points.
type sessionsPerEach struct {
	PSSKiB     float64 `json:"gateway_pss_kib"`
	FDs        float64 `json:"gateway_fds"`
	Goroutines float64 `json:"gateway_goroutines"`
	HeapBytes  float64 `json:"gateway_heap_bytes"`
	StackBytes float64 `json:"gateway_stack_bytes"`
	SlabKiB    float64 `json:"machine_slab_kib"`
	DovecotKiB float64 `json:"dovecot_pss_kib"`
}

type sessionsAt100k struct {
	PSSMiB     float64 `json:"gateway_pss_mib"`
	FDs        float64 `json:"gateway_fds"`
	Goroutines float64 `json:"gateway_goroutines"`
	// KernelMiB: the gateway's two sockets' share of the slab measured.
	KernelMiB float64 `json:"gateway_kernel_mib"`
}

// benchSessions opens idle relayed IMAP sessions (LOGIN, SELECT INBOX)
// through one maildirector serve to two real Dovecot 2.3 backends, and
// measures the gateway at each count in counts.
func benchSessions(t *runTB, dir string, counts []int, store string) sessionsResult {
	res := sessionsResult{Store: store}
	harness.RequireTools(t, "dovecot")
	if len(counts) == 0 {
		return res
	}
	res.CalibrationPairs = 4000
	res.KernelPerSocketB = kernelPerSocket(t, res.CalibrationPairs)
	ips := []string{"127.0.0.11", "127.0.0.12"}
	port, err := harness.FreePort(ips...)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for i := 0; i < sessionUsers; i++ {
		users[sessionUser(i)] = "pw"
	}
	for _, ip := range ips {
		d, err := harness.StartDovecot(harness.DovecotOptions{
			IP: ip, IMAPPort: port, Dir: filepath.Join(dir, "dovecot-"+ip), MailRoot: filepath.Join(dir, "mail"), Users: users,
			// One imap process serves up to a thousand sessions (every
			// user has one uid here), so that thousands of sessions do
			// not need thousands of processes.
			ExtraConf: "service imap {\n  client_limit = 1000\n}\n",
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Stop)
	}
	bin, err := harness.BuildGateway(dir)
	if err != nil {
		t.Fatal(err)
	}
	gwPort, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	adminPort, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	token := hex.EncodeToString(tok)
	if err := os.WriteFile(filepath.Join(dir, "tokens"), []byte("bench "+token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	gwAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(gwPort))
	storeConf := "  store: memory\n"
	if store == "embedded" {
		data, err := os.MkdirTemp("", "sbgw")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(data) })
		storeConf = fmt.Sprintf("  store: embedded\n  data_dir: %s\n", data)
	}
	yaml := fmt.Sprintf(`listen:
  - {protocol: imap, address: %q}
passdb:
  - driver: static
    args: proxy=y nopassword=y
director:
  backends: [%s]
  user_expire: 15m
%sbackend:
  ports: {imap: %d}
  timeout: 30s
trusted_networks: [127.0.0.0/8]
limits: {auth_failure_delay: 0s, auth_penalty_max: 0s, max_userip_connections: 0}
log: {level: warn}
admin:
  listen: 127.0.0.1:%d
  token_file: %s
`, gwAddr, strings.Join(ips, ", "), storeConf, port, adminPort, filepath.Join(dir, "tokens"))
	gw, err := harness.StartGateway(bin, dir, yaml, gwAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gw.Stop)
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", adminPort)
	dovecotPids := func() []int {
		var pids []int
		for _, ip := range ips {
			if p := pidByCmdline("dovecot", filepath.Join(dir, "dovecot-"+ip, "dovecot.conf")); p != 0 {
				pids = append(pids, processGroup(p)...)
			}
		}
		return pids
	}

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Warm up: a session opened and closed, so that one-time allocations
	// are not counted per session.
	if c, err := openSession(gwAddr, 0); err != nil {
		t.Fatal(err)
	} else {
		c.Close()
	}
	time.Sleep(time.Second)
	measure := func(n int, opened time.Duration) sessionsPoint {
		time.Sleep(2 * time.Second) // the relays settle, the GC runs
		p := sessionsPoint{Sessions: n, OpenSeconds: opened.Seconds()}
		m, _ := readMem(gw.Pid())
		p.PSSKiB, p.RSSKiB = m.PSS, m.RSS
		p.FDs, p.Threads = fdCount(gw.Pid()), threads(gw.Pid())
		mt, err := scrape(metricsURL, token)
		if err != nil {
			log.Printf("metrics: %v", err)
		}
		p.Goroutines = int64(mt["go_goroutines"])
		p.HeapInuse = int64(mt["go_memstats_heap_inuse_bytes"])
		p.StackInuse = int64(mt["go_memstats_stack_inuse_bytes"])
		p.SlabKiB, p.TCPMemPages = meminfo("Slab"), sockstatTCPMem()
		for _, pid := range dovecotPids() {
			dm, _ := readMem(pid)
			p.DovecotPSSKiB += dm.PSS
		}
		log.Printf("sessions %d: gateway PSS %d KiB, %d fds, %d goroutines, %d threads", n, p.PSSKiB, p.FDs, p.Goroutines, p.Threads)
		return p
	}
	res.Points = append(res.Points, measure(0, 0))
	for _, target := range counts {
		t0 := time.Now()
		opened, err := openSessions(gwAddr, len(conns), target-len(conns))
		conns = append(conns, opened...)
		if err != nil {
			t.Fatalf("opening sessions %d..%d: %v\ngateway log:\n%s", len(conns), target, err, tailLines(gw.Log(), 20))
		}
		res.Points = append(res.Points, measure(target, time.Since(t0)))
	}
	// The sessions still work after sitting idle.
	for i := 0; i < len(conns); i += max(1, len(conns)/50) {
		if err := command(conns[i], "n", "NOOP"); err != nil {
			t.Fatalf("session %d after idling: %v", i, err)
		}
	}
	res.Slope = slopes(res.Points)
	const n = 100000
	base := res.Points[0]
	res.At100k = sessionsAt100k{
		PSSMiB:     (float64(base.PSSKiB) + res.Slope.PSSKiB*n) / 1024,
		FDs:        float64(base.FDs) + res.Slope.FDs*n,
		Goroutines: float64(base.Goroutines) + res.Slope.Goroutines*n,
		KernelMiB:  2 * res.KernelPerSocketB * n / (1 << 20),
	}
	res.Limits = limitsFor(n, res.At100k.FDs)
	return res
}

// socketCaches are the kernel's slab caches an idle connected TCP socket
// takes objects from: the socket, its inode, the open file, its dentry,
// and the epoll entry Go's netpoller registers it with.
var socketCaches = []string{"TCP", "TCPv6", "sock_inode_cache", "filp", "dentry", "eventpoll_epi"}

// kernelPerSocket measures the kernel's memory per idle connected TCP
// socket on loopback, with pairs connections made to this process: the
// part of a session no process's PSS shows. It counts the objects of
// socketCaches (/proc/slabinfo, root only), else the machine's whole
// Slab, which other processes make noisy.
func kernelPerSocket(t *runTB, pairs int) float64 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	time.Sleep(time.Second)
	before, slab := slabBytes(socketCaches), true
	if before == 0 {
		before, slab = meminfo("Slab")*1024, false
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < pairs; i++ {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c, s)
	}
	time.Sleep(time.Second)
	after := meminfo("Slab") * 1024
	if slab {
		after = slabBytes(socketCaches)
	}
	return float64(after-before) / float64(2*pairs)
}

// slabBytes sums the memory of the objects in use in caches
// (/proc/slabinfo: active objects times object size); 0 when unreadable.
func slabBytes(caches []string) int64 {
	b, err := os.ReadFile("/proc/slabinfo")
	if err != nil {
		return 0
	}
	want := map[string]bool{}
	for _, c := range caches {
		want[c] = true
	}
	var sum int64
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !want[f[0]] {
			continue
		}
		active, _ := strconv.ParseInt(f[1], 10, 64)
		size, _ := strconv.ParseInt(f[3], 10, 64)
		sum += active * size
	}
	return sum
}

// sessionUser is the i-th session user.
func sessionUser(i int) string { return fmt.Sprintf("s%04d@example.com", i) }

// clientIP spreads the clients over 127.0.0.0/8 (a source address has
// some 28,000 ports towards one gateway address).
func clientIP(i int) string { return fmt.Sprintf("127.0.%d.%d", 1+i/250%250, 1+i%250) }

// openSessions opens n sessions, numbered from first, 16 at a time.
func openSessions(addr string, first, n int) ([]net.Conn, error) {
	out := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := openSession(addr, first+i)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("session %d: %w", first+i, err)
					}
					mu.Unlock()
					return
				}
				out[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		var got []net.Conn
		for _, c := range out {
			if c != nil {
				got = append(got, c)
			}
		}
		return got, firstErr
	}
	return out, nil
}

// openSession logs session i in through the gateway and selects INBOX.
func openSession(addr string, i int) (net.Conn, error) {
	d := net.Dialer{Timeout: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP(i))}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	if g, err := readLine(c); err != nil || !strings.HasPrefix(g, "* OK") {
		c.Close()
		return nil, fmt.Errorf("greeting %q: %v", g, err)
	}
	u := sessionUser(i % sessionUsers)
	if err := command(c, "a", "LOGIN "+u+" pw"); err != nil {
		c.Close()
		return nil, err
	}
	if err := command(c, "b", "SELECT INBOX"); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// command sends one command and reads up to its tagged answer, which must
// be OK. It reads byte by byte so that nothing is left buffered outside
// the connection between commands.
func command(c net.Conn, tag, cmd string) error {
	c.SetDeadline(time.Now().Add(time.Minute))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, tag+" "+cmd+"\r\n"); err != nil {
		return err
	}
	for {
		line, err := readLine(c)
		if err != nil {
			return err
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return fmt.Errorf("%s: %s", cmd, line)
			}
			return nil
		}
	}
}

// readLine reads one line a byte at a time (answers here are short).
func readLine(c net.Conn) (string, error) {
	var b strings.Builder
	buf := make([]byte, 1)
	for {
		if _, err := c.Read(buf); err != nil {
			return b.String(), err
		}
		if buf[0] == '\n' {
			return strings.TrimRight(b.String(), "\r"), nil
		}
		b.WriteByte(buf[0])
	}
}

// scrape reads the gateway's metrics (untyped: name without labels ->
// value).
func scrape(url, token string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, errors.New(resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || strings.Contains(line, "{") {
			continue
		}
		if f := strings.Fields(line); len(f) == 2 {
			v, err := strconv.ParseFloat(f[1], 64)
			if err == nil {
				out[f[0]] = v
			}
		}
	}
	return out, sc.Err()
}

// processGroup returns the processes in pid's process group (a Dovecot
// started with its own group: master, login and mail processes).
func processGroup(pgid int) []int {
	var out []int
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			out = append(out, pid)
		}
	}
	return out
}

// slopes fits each measure against the session count (least squares).
func slopes(ps []sessionsPoint) sessionsPerEach {
	fit := func(y func(sessionsPoint) float64) float64 {
		var sx, sy, sxx, sxy float64
		for _, p := range ps {
			x := float64(p.Sessions)
			sx += x
			sy += y(p)
			sxx += x * x
			sxy += x * y(p)
		}
		n := float64(len(ps))
		if d := n*sxx - sx*sx; d != 0 {
			return (n*sxy - sx*sy) / d
		}
		return 0
	}
	return sessionsPerEach{
		PSSKiB:     fit(func(p sessionsPoint) float64 { return float64(p.PSSKiB) }),
		FDs:        fit(func(p sessionsPoint) float64 { return float64(p.FDs) }),
		Goroutines: fit(func(p sessionsPoint) float64 { return float64(p.Goroutines) }),
		HeapBytes:  fit(func(p sessionsPoint) float64 { return float64(p.HeapInuse) }),
		StackBytes: fit(func(p sessionsPoint) float64 { return float64(p.StackInuse) }),
		SlabKiB:    fit(func(p sessionsPoint) float64 { return float64(p.SlabKiB) }),
		DovecotKiB: fit(func(p sessionsPoint) float64 { return float64(p.DovecotPSSKiB) }),
	}
}

// limitsFor says which limits n sessions need raised, from this
// machine's settings.
func limitsFor(n int, fds float64) []string {
	var out []string
	need := int64(fds * 1.1)
	out = append(out, fmt.Sprintf("open files per process (LimitNOFILE / ulimit -n): %d needed; here %d (the unit sets 262144)", need, nofile()))
	if v := readInt("/proc/sys/fs/nr_open"); v < need {
		out = append(out, fmt.Sprintf("fs.nr_open (the ceiling of any process's limit): %d, needs %d", v, need))
	} else {
		out = append(out, fmt.Sprintf("fs.nr_open: %d, enough", v))
	}
	out = append(out, fmt.Sprintf("fs.file-max (the whole machine): %d", readInt("/proc/sys/fs/file-max")))
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		f := strings.Fields(string(b))
		if len(f) == 2 {
			lo, _ := strconv.Atoi(f[0])
			hi, _ := strconv.Atoi(f[1])
			out = append(out, fmt.Sprintf("net.ipv4.ip_local_port_range %d-%d: %d ports towards each backend address and port, so %d sessions need at least %d backends (or a wider range, or more gateway source addresses)",
				lo, hi, hi-lo+1, n, (n+hi-lo)/(hi-lo+1)))
		}
	}
	out = append(out, fmt.Sprintf("net.core.somaxconn: %d (the listen backlog for login bursts)", readInt("/proc/sys/net/core/somaxconn")))
	return out
}

func nofile() int64 {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Max open files") {
			f := strings.Fields(line)
			if len(f) >= 5 {
				n, _ := strconv.ParseInt(f[3], 10, 64)
				return n
			}
		}
	}
	return 0
}

func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
	return n
}
