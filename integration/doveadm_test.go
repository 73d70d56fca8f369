// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/integration/harness"
)

const doveadmPassword = "doveadm-secret"

// doveadmBackendConf gives a backend a doveadm TCP listener with the
// doveadm password, and the quota plugin with a limit of its own (100 MB
// on .11, 200 MB on .12): `quota get` then says which backend answered.
func doveadmBackendConf(ip string, port int) string {
	limit := 100
	if strings.HasSuffix(ip, ".12") {
		limit = 200
	}
	return fmt.Sprintf(`doveadm_password = %s
service doveadm {
  inet_listener doveadm {
    address = %s
    port = %d
  }
}
mail_plugins = $mail_plugins quota
plugin {
  quota = count:User quota
  quota_rule = *:storage=%dM
  quota_vsizes = yes
}
`, doveadmPassword, ip, port, limit)
}

// doveadmRun is one run of Debian's doveadm.
type doveadmRun struct {
	stdout, stderr string
	rc             int
}

// runDoveadm runs `doveadm -c conf [opts] <words> -S server -u user <args>`
// with stdin, as an administrator would against a doveadm server.
func runDoveadm(t *testing.T, conf, server, user, stdin string, opts, words []string, args ...string) doveadmRun {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	argv := append([]string{"-c", conf}, opts...)
	argv = append(argv, words...)
	argv = append(argv, "-S", server, "-u", user)
	argv = append(argv, args...)
	cmd := exec.CommandContext(ctx, "doveadm", argv...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := doveadmRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.rc = ee.ExitCode()
	case err != nil:
		t.Fatalf("doveadm %q: %v", argv, err)
	}
	return r
}

// TestDoveadm: Debian's doveadm against the gateway's doveadm listener, in
// front of two Dovecot backends: every command answers exactly what the
// user's backend answers when asked directly (stdout, stderr with the
// server's address, exit code), for five users across both backends —
// save (its input streamed through), mailbox status, fetch, mailbox list,
// quota get (which differs between the backends, so it shows which one
// answered), expunge — and kick (which Debian's doveadm cannot send to a
// doveadm server: sent by our own client, as doveadm's HTTP API or a
// director would). A user pinned by the passdb goes to its host, one
// pinned to a dead host gets a temporary failure, a wrong password is
// refused, a command without a user is refused with a reason, and the
// users of a backend that died get errors, not the other backend's
// answers.
func TestDoveadm(t *testing.T) {
	ips := []string{"127.0.0.11", "127.0.0.12"}
	requireTools(t, "dovecot", "doveadm")
	dport, err := harness.FreePort(ips...)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]string{}
	for i := 0; i < 20; i++ {
		users[userName(i)] = password(userName(i))
	}
	e := startBackendsWith(t, ips, users, func(o *harness.DovecotOptions) {
		o.ExtraConf = doveadmBackendConf(o.IP, dport)
	})
	// Five users, at least two on each backend; and one more user of the
	// first backend, pinned by the passdb to the second.
	on := map[string][]string{}
	for i := 0; i < 20; i++ {
		b := e.ringBackend(userName(i))
		on[b] = append(on[b], userName(i))
	}
	if len(on[ips[0]]) < 4 || len(on[ips[1]]) < 3 {
		t.Fatalf("the ring puts too few test users on a backend: %v", on)
	}
	five := []string{on[ips[0]][0], on[ips[1]][0], on[ips[0]][1], on[ips[1]][1], on[ips[0]][2]}
	pinned := on[ips[0]][3]
	const dead = "pinned-dead@example.com"
	passdbs := fmt.Sprintf(`  - driver: static
    args: proxy=y nopassword=y host=127.0.0.99
    username_filter: %s
  - driver: static
    args: proxy=y nopassword=y host=%s
    username_filter: %s
  - driver: static
    args: proxy=y nopassword=y
`, dead, ips[1], pinned)
	gwPort, err := harness.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	e.gwAddr = "127.0.0.1:" + strconv.Itoa(gwPort)
	e.startGatewayWith(t, fmt.Sprintf("  - {protocol: doveadm, address: %q}\n", e.gwAddr), passdbs,
		fmt.Sprintf("doveadm: {password: %s, port: %d}\n", doveadmPassword, dport))
	conf := e.backends[0].Conf // the doveadm client's settings: doveadm_password, the quota plugin
	direct := func(ip string) string { return net.JoinHostPort(ip, strconv.Itoa(dport)) }

	// same runs one doveadm command against the user's backend and
	// through the gateway, and wants the same answer.
	same := func(user, backend, stdin string, words []string, args ...string) doveadmRun {
		t.Helper()
		want := runDoveadm(t, conf, direct(backend), user, stdin, nil, words, args...)
		got := runDoveadm(t, conf, e.gwAddr, user, stdin, nil, words, args...)
		got.stderr = strings.ReplaceAll(got.stderr, e.gwAddr, direct(backend))
		// The backend's log prefix names its process and session.
		want.stderr = processSession.ReplaceAllString(want.stderr, "<PID><SESSION>")
		got.stderr = processSession.ReplaceAllString(got.stderr, "<PID><SESSION>")
		if got != want {
			t.Errorf("doveadm %s -u %s %q:\n through the gateway: %+v\n directly on %s:   %+v", strings.Join(words, " "), user, args, got, backend, want)
		}
		return got
	}
	msg := func(subject string) string {
		return "From: sender@example.org\nSubject: " + subject + "\nMessage-ID: <" + subject + "@test>\n\nbody\twith a tab\n.a dotted line\n"
	}
	for _, u := range five {
		b := e.ringBackend(u)
		// One message saved directly, one through the gateway.
		if r := runDoveadm(t, conf, direct(b), u, msg("direct-"+u), nil, []string{"save"}); r.rc != 0 {
			t.Fatalf("save on %s: %+v", b, r)
		}
		if r := runDoveadm(t, conf, e.gwAddr, u, msg("gateway-"+u), nil, []string{"save"}); r.rc != 0 || r.stdout != "" {
			t.Fatalf("save through the gateway: %+v", r)
		}
		if r := same(u, b, "", []string{"mailbox", "status"}, "messages vsize uidnext unseen", "INBOX"); !strings.Contains(r.stdout, "messages=2") {
			t.Errorf("%s: %+v", u, r)
		}
		if r := same(u, b, "", []string{"fetch"}, "uid flags hdr.subject body", "mailbox", "INBOX"); !strings.Contains(r.stdout, "gateway-"+u) || !strings.Contains(r.stdout, "body\twith a tab\n.a dotted line") {
			t.Errorf("%s: %+v", u, r)
		}
		same(u, b, "", []string{"mailbox", "list"})
		// A failing command's log lines reach the client as the
		// backend's own.
		if r := same(u, b, "", []string{"mailbox", "status"}, "messages", "NoSuchBox"); r.rc == 0 || !strings.Contains(r.stderr, "NoSuchBox") {
			t.Errorf("%s: %+v", u, r)
		}
		q := same(u, b, "", []string{"quota", "get"})
		other := ips[0]
		if b == ips[0] {
			other = ips[1]
		}
		if r := runDoveadm(t, conf, direct(other), u, "", nil, []string{"quota", "get"}); r.stdout == q.stdout {
			t.Errorf("quota get answers the same on both backends: the test cannot tell them apart:\n%s", q.stdout)
		}
		// expunge, one message through the gateway and one directly.
		if r := runDoveadm(t, conf, e.gwAddr, u, "", nil, []string{"expunge"}, "mailbox", "INBOX", "header", "Subject", "gateway-"+u); r.rc != 0 || r.stdout != "" {
			t.Errorf("expunge through the gateway: %+v", r)
		}
		if r := same(u, b, "", []string{"mailbox", "status"}, "messages", "INBOX"); r.stdout != "INBOX messages=1\n" {
			t.Errorf("%s after expunge: %+v", u, r)
		}
		if r := runDoveadm(t, conf, direct(b), u, "", nil, []string{"expunge"}, "mailbox", "INBOX", "all"); r.rc != 0 {
			t.Errorf("expunge: %+v", r)
		}
		same(u, b, "", []string{"expunge"}, "mailbox", "INBOX", "all")
		if r := same(u, b, "", []string{"mailbox", "status"}, "messages", "INBOX"); r.stdout != "INBOX messages=0\n" {
			t.Errorf("%s after expunge: %+v", u, r)
		}
	}

	// kick, for a user with a session on its backend: through the
	// gateway, then (with a new session) directly, then with none.
	u := five[0]
	b := e.ringBackend(u)
	for _, server := range []string{e.gwAddr, direct(b)} {
		imap := dial(t, net.JoinHostPort(b, strconv.Itoa(e.port)), "")
		if st := imap.login(u, password(u)); !strings.HasPrefix(st, "OK") {
			t.Fatalf("login: %s", st)
		}
		waitWho(t, e.backendByIP(b), u)
		out, _, result := doveadmRaw(t, server, "\t\tkick\t"+u)
		if out != u+"\t" || result != "+" {
			t.Errorf("kick via %s: %q %q", server, out, result)
		}
		imap.conn.SetDeadline(time.Now().Add(10 * time.Second))
		if rest, _ := io.ReadAll(imap.r); !strings.HasPrefix(string(rest), "* BYE") {
			t.Errorf("kick via %s: the session goes on (%q)", server, rest)
		}
		imap.close()
	}
	for _, server := range []string{e.gwAddr, direct(b)} {
		if out, _, result := doveadmRaw(t, server, "\t\tkick\t"+u); out != "" || result != "-NOTFOUND" {
			t.Errorf("kick without sessions via %s: %q %q", server, out, result)
		}
	}

	// -A: doveadm expands it itself and sends one command per user, with
	// -A among the arguments (the server then prints the user name too).
	line := fmt.Sprintf("\t%s\tmailbox status\t-A\t--\tmessages\tINBOX", u)
	wantOut, _, wantRes := doveadmRaw(t, direct(b), line)
	if out, _, res := doveadmRaw(t, e.gwAddr, line); out != wantOut || res != wantRes || res != "+" {
		t.Errorf("-A: %q %q, directly %q %q", out, res, wantOut, wantRes)
	}
	// A command without a user has no backend: refused, with the reason.
	if out, logs, res := doveadmRaw(t, e.gwAddr, "\t\tmailbox status\t-A\t--\tmessages\tINBOX"); out != "" || res != "-USAGE" || !strings.Contains(logs, "needs a user") {
		t.Errorf("no user: %q %q %q", out, logs, res)
	}
	if out, logs, res := doveadmRaw(t, e.gwAddr, "\t"+u+"\twho"); out != "" || res != "-NOPERM" || !strings.Contains(logs, "whole doveadm server") {
		t.Errorf("who: %q %q %q", out, logs, res)
	}

	// The passdb's host pins: the pinned user is served by the second
	// backend, although the ring says the first.
	q := same(pinned, ips[1], "", []string{"quota", "get"})
	if q.rc != 0 || !strings.Contains(q.stdout, "204800") {
		t.Errorf("pinned user: %+v", q)
	}
	// Pinned to a dead host: a temporary failure, with a reason.
	r := runDoveadm(t, conf, e.gwAddr, dead, "", nil, []string{"mailbox", "status"}, "messages", "INBOX")
	if r.rc != 75 || r.stdout != "" || !strings.Contains(r.stderr, "backend is not answering") {
		t.Errorf("dead host: %+v", r)
	}
	// A wrong doveadm password is refused.
	r = runDoveadm(t, conf, e.gwAddr, u, "", []string{"-o", "doveadm_password=wrong"}, []string{"mailbox", "status"}, "messages", "INBOX")
	if r.rc == 0 || r.stdout != "" || !strings.Contains(r.stderr, "doveadm authentication failed") {
		t.Errorf("wrong password: %+v", r)
	}
	if !strings.Contains(e.gw.Log(), `msg="authentication failed" service=doveadm`) {
		t.Error("the refused password is not logged as a failed login")
	}

	// A backend dies: its users get errors, the others' commands go on.
	e.backendByIP(ips[1]).Kill()
	for _, u := range five {
		r := runDoveadm(t, conf, e.gwAddr, u, "", nil, []string{"mailbox", "status"}, "messages", "INBOX")
		if e.ringBackend(u) == ips[1] {
			if r.rc != 75 || r.stdout != "" || !strings.Contains(r.stderr, "backend is not answering") {
				t.Errorf("%s, whose backend is dead: %+v", u, r)
			}
		} else if r.rc != 0 || r.stdout != "INBOX messages=0\n" {
			t.Errorf("%s, whose backend is alive: %+v", u, r)
		}
	}
}

// processSession is "<pid><session id>" in a Dovecot log prefix.
var processSession = regexp.MustCompile(`<[0-9]+><[A-Za-z0-9+/]+>`)

// waitWho waits until the backend's anvil lists a session of user.
func waitWho(t *testing.T, b *harness.Dovecot, user string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		who, err := b.Who()
		if err == nil {
			for _, w := range who {
				if w.User == user {
					return
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never shows in doveadm who on %s (%v)", user, b.Opts.IP, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// doveadmRaw sends one command line (fields tab-escaped) to a doveadm
// server as Dovecot's doveadm client would (version 1.2, PLAIN with the
// doveadm password) and returns the printed fields, the log channel and
// the result line.
func doveadmRaw(t *testing.T, addr, line string) (out, logs, result string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "VERSION\tdoveadm-server\t1\t2\nPLAIN\t%s\n%s\n",
		base64.StdEncoding.EncodeToString([]byte("\x00doveadm\x00"+doveadmPassword)), line)
	for _, want := range []string{"VERSION\tdoveadm-client\t1\t2\n", "-\n", "+\n"} {
		if l, err := r.ReadString('\n'); l != want {
			t.Fatalf("%s: handshake %q, want %q (%v)", addr, l, want, err)
		}
	}
	var main, log bytes.Buffer
	for {
		if i := bytes.IndexByte(main.Bytes(), '\n'); i >= 0 {
			if j := bytes.IndexByte(main.Bytes()[i+1:], '\n'); j >= 0 {
				return string(main.Bytes()[:i]), log.String(), string(main.Bytes()[i+1 : i+1+j])
			}
		}
		var hdr [5]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Fatalf("%s: %q: reply cut: %v (got %q)", addr, line, err, main.String())
		}
		data := make([]byte, binary.BigEndian.Uint32(hdr[1:]))
		if _, err := io.ReadFull(r, data); err != nil {
			t.Fatalf("%s: reply cut: %v", addr, err)
		}
		switch hdr[0] {
		case 0:
			main.Write(data)
		case 'L':
			log.Write(data)
		}
	}
}
