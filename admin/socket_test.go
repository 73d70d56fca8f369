// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/director"
)

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// shortDir is a fresh directory with a path short enough for a socket.
func shortDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("", "adm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// startSocket serves ops on a new socket and returns its path.
func startSocket(t *testing.T, ops Ops, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(shortDir(t), "director-admin")
	s := &Socket{Path: path, Mode: mode, Ops: ops, Log: discardLog(), OpTimeout: 10 * time.Second}
	if _, fake := ops.(*fakeOps); fake {
		s.now = func() time.Time { return testNow } // the fake's assignments live at testNow
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		s.Serve(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if _, err := os.Lstat(path); err == nil {
			t.Errorf("the socket %s is still there after Serve ended", path)
		}
	})
	return path
}

type adminClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

// dialAdmin connects and does the handshake, as doveadm does.
func dialAdmin(t *testing.T, path string) *adminClient {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	a := &adminClient{t: t, c: c, r: bufio.NewReader(c)}
	io.WriteString(c, handshake)
	if l := a.line(); l != strings.TrimSuffix(handshake, "\n") {
		t.Fatalf("handshake %q", l)
	}
	return a
}

func (a *adminClient) line() string {
	a.t.Helper()
	l, err := a.r.ReadString('\n')
	if err != nil {
		a.t.Fatalf("read: %v (got %q)", err, l)
	}
	return strings.TrimSuffix(l, "\n")
}

// cmd sends a command and reads a one-line reply.
func (a *adminClient) cmd(line string) string {
	a.t.Helper()
	io.WriteString(a.c, line+"\n")
	return a.line()
}

// list sends a command and reads lines up to the empty one.
func (a *adminClient) list(line string) []string {
	a.t.Helper()
	io.WriteString(a.c, line+"\n")
	var out []string
	for {
		l := a.line()
		if l == "" {
			return out
		}
		out = append(out, l)
	}
}

// closed says whether the server closed the connection (without a reply).
func (a *adminClient) closed() bool {
	a.t.Helper()
	l, err := a.r.ReadString('\n')
	if err == nil {
		a.t.Errorf("got %q, want the connection closed", l)
		return false
	}
	return err == io.EOF
}

func TestSocketMode(t *testing.T) {
	for _, mode := range []os.FileMode{0, 0o660} {
		path := startSocket(t, newFakeOps("127.0.0.11"), mode)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		want := mode
		if want == 0 {
			want = 0o600
		}
		if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != want {
			t.Errorf("socket mode %v, want a socket with %v", fi.Mode(), want)
		}
		entries, _ := os.ReadDir(filepath.Dir(path))
		if len(entries) != 1 {
			t.Errorf("the directory holds %d entries, want the socket alone", len(entries))
		}
	}
}

func TestSocketListenRefuses(t *testing.T) {
	dir := shortDir(t)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	if err := (&Socket{Path: file}).Listen(); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("over a file: %v", err)
	}
	if err := (&Socket{Path: "relative"}).Listen(); err == nil {
		t.Error("a relative path was accepted")
	}
	long := "/" + strings.Repeat("d", 100) + "/s"
	if err := (&Socket{Path: long}).Listen(); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("a long path: %v", err)
	}
	// A socket in use is not taken over; a stale one is replaced.
	path := startSocket(t, newFakeOps("127.0.0.11"), 0)
	if err := (&Socket{Path: path, Log: discardLog()}).Listen(); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Errorf("a socket in use: %v", err)
	}
	stale := filepath.Join(dir, "stale")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	s := &Socket{Path: stale, Log: discardLog(), Ops: newFakeOps("127.0.0.11")}
	if err := s.Listen(); err != nil {
		t.Errorf("a stale socket: %v", err)
	} else {
		s.ln.Close()
	}
}

func TestSocketHandshake(t *testing.T) {
	path := startSocket(t, newFakeOps("127.0.0.11"), 0)
	for _, hs := range []string{"VERSION\tdirector-doveadm\t2\t0\n", "HOST-LIST\n", "VERSION\tdoveadm-server\t1\t0\n"} {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		r := bufio.NewReader(c)
		if l, _ := r.ReadString('\n'); l != handshake {
			t.Fatalf("server handshake %q", l)
		}
		io.WriteString(c, hs+"HOST-LIST\n")
		if l, err := r.ReadString('\n'); err != io.EOF {
			t.Errorf("after handshake %q: got %q, %v; want the connection closed", hs, l, err)
		}
		c.Close()
	}
}

func TestSocketHostCommands(t *testing.T) {
	ops := newFakeOps("127.0.0.11", "127.0.0.12", "127.0.0.13@other 50", "127.0.0.14")
	ops.assign("user1", "127.0.0.11", testNow.Add(time.Minute))
	ops.assign("user2", "127.0.0.11", testNow.Add(time.Minute))
	ops.assign("user3", "127.0.0.12", testNow.Add(-time.Second)) // expired
	ops.change("127.0.0.12", func(h *director.HostRecord) { h.Down = true })
	path := startSocket(t, ops, 0)
	a := dialAdmin(t, path)
	ts := testNow.Add(-time.Hour).Unix()
	want := []string{
		fmt.Sprintf("127.0.0.11\t100\t2\t\tU\t%d", ts),
		fmt.Sprintf("127.0.0.12\t100\t0\t\tD\t%d", ts),
		fmt.Sprintf("127.0.0.13\t50\t0\tother\tU\t%d", ts),
		fmt.Sprintf("127.0.0.14\t100\t0\t\tU\t%d", ts),
	}
	if got := a.list("HOST-LIST"); !slices.Equal(got, want) {
		t.Errorf("HOST-LIST:\n%q\nwant\n%q", got, want)
	}
	for _, cr := range [][2]string{
		{"HOST-SET\t127.0.0.15@new\t7", "OK"},
		{"HOST-SET\t127.0.0.15@new", "OK"},
		{"HOST-SET\t127.0.0.15@else\t7", "host tag can't be changed"},
		{"HOST-SET\t127.0.0.16\t1001", "vhost count too large"},
		{"HOST-SET\t127.0.0.16@a/b\t1", "tag \"a/b\" may not contain '/' or control characters"},
		{"HOST-UPDATE\t127.0.0.11\t0", "OK"},
		{"HOST-UPDATE\t127.0.0.99\t5", "NOTFOUND"},
		{"HOST-UPDATE\t127.0.0.13@x\t5", "host tag can't be changed"},
		{"HOST-UP\t127.0.0.12", "OK"},
		{"HOST-DOWN\t127.0.0.11", "OK"},
		{"HOST-DOWN\t127.0.0.99", "NOTFOUND"},
		{"HOST-UP\t127.0.0.99", "NOTFOUND"},
		{"HOST-REMOVE\t127.0.0.99", "NOTFOUND"},
		{"HOST-FLUSH\t127.0.0.99", "NOTFOUND"},
		{"HOST-RESET-USERS\t127.0.0.99\t3", "NOTFOUND"},
		{"DIRECTOR-ADD\t10.0.0.1", "gateways join and leave through the director store, not the admin socket"},
		{"USER-KICK-ALT\tf\tv", "USER-KICK-ALT is not supported: kick the user by name"},
	} {
		if got := a.cmd(cr[0]); got != cr[1] {
			t.Errorf("%q: %q, want %q", cr[0], got, cr[1])
		}
	}
	ops.mu.Lock()
	h := ops.hosts["127.0.0.15"]
	ops.mu.Unlock()
	if h.Tag != "new" || h.VHosts != 7 {
		t.Errorf("HOST-SET without a count changed the host: %+v", h)
	}
	if got := a.cmd("HOST-REMOVE\t127.0.0.14"); got != "OK" {
		t.Errorf("HOST-REMOVE: %q", got)
	}
	if got := a.list("HOST-LIST-REMOVED"); !slices.Equal(got, []string{"127.0.0.14"}) {
		t.Errorf("HOST-LIST-REMOVED: %q", got)
	}
	calls := ops.Calls()
	for _, c := range []string{"update 127.0.0.11 0 by ", "down 127.0.0.11 by ", "up 127.0.0.12 by ", "remove 127.0.0.14 by ", "add 127.0.0.15@new 7 by "} {
		found := false
		for _, got := range calls {
			found = found || strings.HasPrefix(got, c)
		}
		if !found {
			t.Errorf("no call %q in %q", c, calls)
		}
	}
	for _, c := range calls {
		if !strings.Contains(c, " by admin-socket:") {
			t.Errorf("call %q does not name the socket's peer", c)
		}
	}
}

func userHash(user string) uint32 { return director.UserHash(strings.ToLower(user)) }

func mustParse(ips ...string) []director.Host {
	h, err := director.ParseHosts(ips)
	if err != nil {
		panic(err)
	}
	return h
}

func TestSocketFlush(t *testing.T) {
	ops := newFakeOps("127.0.0.11", "127.0.0.12")
	path := startSocket(t, ops, 0)
	a := dialAdmin(t, path)
	for _, cmd := range []string{"HOST-FLUSH\t127.0.0.12", "HOST-RESET-USERS\t127.0.0.11\t5", "HOST-FLUSH", "HOST-RESET-USERS\t\t10"} {
		if got := a.cmd(cmd); got != "OK" {
			t.Errorf("%q: %q", cmd, got)
		}
	}
	var flushes []string
	for _, c := range ops.Calls() {
		f := strings.Fields(c)
		flushes = append(flushes, f[0]+" "+f[1])
	}
	want := []string{"flush 127.0.0.12", "flush 127.0.0.11", "flush 127.0.0.11", "flush 127.0.0.12", "flush 127.0.0.11", "flush 127.0.0.12"}
	if !slices.Equal(flushes, want) {
		t.Errorf("flushes %q, want %q", flushes, want)
	}
}

// TestSocketPoolmon: poolmon writes HOST-DOWN and HOST-FLUSH and hangs up
// without reading the replies; both still happen (Director could lose the
// second one).
func TestSocketPoolmon(t *testing.T) {
	ops := newFakeOps("127.0.0.11", "127.0.0.12")
	ops.block = make(chan struct{})
	path := startSocket(t, ops, 0)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, handshake+"HOST-DOWN\t127.0.0.12\nHOST-FLUSH\t127.0.0.12\n")
	c.Close()
	close(ops.block) // the down's move ends after the client left
	deadline := time.Now().Add(5 * time.Second)
	for len(ops.Calls()) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	calls := ops.Calls()
	if len(calls) != 2 || !strings.HasPrefix(calls[0], "down 127.0.0.12") || !strings.HasPrefix(calls[1], "flush 127.0.0.12") {
		t.Errorf("calls %q, want the down and the flush", calls)
	}
}

func TestSocketUsers(t *testing.T) {
	ops := newFakeOps("127.0.0.11", "127.0.0.12", "127.0.0.13")
	exp := testNow.Add(time.Minute)
	ops.assign("user1@example.com", "127.0.0.12", exp)
	ops.assign("user2@example.com", "127.0.0.11", exp)
	ops.assign("gone@example.com", "127.0.0.11", testNow.Add(-time.Minute))
	ops.change("127.0.0.13", func(h *director.HostRecord) { h.Down = true })
	path := startSocket(t, ops, 0)
	a := dialAdmin(t, path)

	h1, h2 := userHash("user1@example.com"), userHash("user2@example.com")
	ring := func(user string, ips ...string) string {
		var hosts []string
		hosts = append(hosts, ips...)
		return ringLookup(mustParse(hosts...), "", userHash(user))
	}
	wantLookup := fmt.Sprintf("127.0.0.12\t%d\t%s\t%s", exp.Unix(), ring("user1@example.com", "127.0.0.11", "127.0.0.12"), ring("user1@example.com", "127.0.0.11", "127.0.0.12", "127.0.0.13"))
	if got := a.cmd("USER-LOOKUP\tUser1@Example.com\t"); got != wantLookup {
		t.Errorf("USER-LOOKUP by name: %q, want %q", got, wantLookup)
	}
	if got := a.cmd(fmt.Sprintf("USER-LOOKUP\t%d", h1)); got != wantLookup {
		t.Errorf("USER-LOOKUP by hash: %q, want %q", got, wantLookup)
	}
	wantNone := fmt.Sprintf("\t0\t%s\t%s", ring("nobody", "127.0.0.11", "127.0.0.12"), ring("nobody", "127.0.0.11", "127.0.0.12", "127.0.0.13"))
	if got := a.cmd("USER-LOOKUP\tnobody"); got != wantNone {
		t.Errorf("USER-LOOKUP of an unassigned user: %q, want %q", got, wantNone)
	}
	if got := a.cmd("USER-LOOKUP\tbad%name"); got != "TRYAGAIN" {
		t.Errorf("USER-LOOKUP of a name that cannot be hashed: %q", got)
	}
	wantList := []string{fmt.Sprintf("%d\t%d\t127.0.0.12", h1, exp.Unix()), fmt.Sprintf("%d\t%d\t127.0.0.11", h2, exp.Unix())}
	if got := a.list("USER-LIST"); !slices.Equal(got, wantList) {
		t.Errorf("USER-LIST: %q, want %q", got, wantList)
	}
	if got := a.list("USER-LIST\t127.0.0.11"); !slices.Equal(got, wantList[1:]) {
		t.Errorf("USER-LIST 127.0.0.11: %q", got)
	}

	// Moves: by hash (as doveadm sends them), to the same backend (nothing
	// happens), to a down or unknown one, an unassigned hash.
	for _, cr := range [][2]string{
		{fmt.Sprintf("USER-MOVE\t%d\t127.0.0.11", h1), "OK"},
		{fmt.Sprintf("USER-MOVE\t%d\t127.0.0.11", h2), "OK"},
		{"USER-MOVE\tuser2@example.com\t127.0.0.13", "host is down: 127.0.0.13"},
		{"USER-MOVE\tuser2@example.com\t127.0.0.99", "NOTFOUND"},
		{"USER-MOVE\t12345\t127.0.0.11", ErrNoAssignment.Error()},
		{"USER-MOVE\tnew@example.com\t127.0.0.12", "OK"},
		{"USER-KICK\tuser1@example.com", "OK"},
		{"USER-KICK\tnobody\tnowait", "OK"},
	} {
		if got := a.cmd(cr[0]); got != cr[1] {
			t.Errorf("%q: %q, want %q", cr[0], got, cr[1])
		}
	}
	var moves []string
	for _, c := range ops.Calls() {
		f := strings.Fields(c)
		moves = append(moves, strings.Join(f[:3], " "))
	}
	slices.Sort(moves)
	want := []string{"kick /user1@example.com by", "move /new@example.com 127.0.0.12", "move /user1@example.com 127.0.0.11"}
	if !slices.Equal(moves, want) {
		t.Errorf("changes %q, want %q", moves, want)
	}

	gws := a.list("DIRECTOR-LIST")
	wantGWs := []string{"gw1\t0\tself\t0\tring synced - 2 sessions", "gw2\t0\t\t0\tfenced off the director store - 5 sessions"}
	if !slices.Equal(gws, wantGWs) {
		t.Errorf("DIRECTOR-LIST: %q, want %q", gws, wantGWs)
	}
}

func TestSocketMalformedCloses(t *testing.T) {
	path := startSocket(t, newFakeOps("127.0.0.11"), 0)
	for _, cmd := range []string{"", "NOPE", "HOST-SET\tnot-an-ip", "HOST-UPDATE\t127.0.0.11", "USER-MOVE\tu", "HOST-UP\t", strings.Repeat("x", maxLine+1)} {
		a := dialAdmin(t, path)
		io.WriteString(a.c, cmd+"\n")
		if !a.closed() {
			t.Errorf("%.40q: the connection stays open", cmd)
		}
	}
	// The server is still there.
	if got := dialAdmin(t, path).list("HOST-LIST"); len(got) != 1 {
		t.Errorf("HOST-LIST after the bad ones: %q", got)
	}
}

func TestSocketStoreDown(t *testing.T) {
	ops := newFakeOps("127.0.0.11")
	path := startSocket(t, ops, 0)
	ops.fail = fmt.Errorf("etcd: context deadline exceeded")
	a := dialAdmin(t, path)
	if got := a.cmd("HOST-DOWN\t127.0.0.11"); got != "etcd: context deadline exceeded" {
		t.Errorf("HOST-DOWN with the store down: %q", got)
	}
	// Lists and lookups cannot say "failed" in their format: the
	// connection closes, which doveadm reports as a temporary failure.
	io.WriteString(a.c, "HOST-LIST\n")
	if !a.closed() {
		t.Error("HOST-LIST with the store down did not close the connection")
	}
}
