// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// lmtpClient is a minimal LMTP client for transcripts.
type lmtpClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dialLMTP connects over TCP ("127.0.0.1:24") or a UNIX socket ("/path"),
// from the loopback address from ("" for any).
func dialLMTP(t testing.TB, addr, from string) *lmtpClient {
	t.Helper()
	var conn net.Conn
	var err error
	if strings.HasPrefix(addr, "/") {
		conn, err = net.Dial("unix", addr)
	} else {
		d := net.Dialer{Timeout: 10 * time.Second}
		if from != "" {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
		}
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	conn.SetDeadline(time.Now().Add(3 * time.Minute))
	c := &lmtpClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := c.reply(); !strings.HasPrefix(g, "220 ") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *lmtpClient) close() { c.conn.Close() }

// reply reads one (multi-line) reply and returns its last line.
func (c *lmtpClient) reply() string {
	c.t.Helper()
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read: %v (got %q)", err, l)
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 4 || l[3] != '-' {
			return l
		}
	}
}

func (c *lmtpClient) cmd(format string, args ...any) string {
	c.t.Helper()
	fmt.Fprintf(c.conn, format+"\r\n", args...)
	return c.reply()
}

// deliver runs one transaction and returns the RCPT replies and, for the
// accepted recipients, the DATA replies (in RCPT order).
func (c *lmtpClient) deliver(from string, rcpts []string, msg string) (rcptReplies, dataReplies []string) {
	c.t.Helper()
	if r := c.cmd("MAIL FROM:<%s>", from); !strings.HasPrefix(r, "250") {
		c.t.Fatalf("MAIL: %s", r)
	}
	accepted := 0
	for _, r := range rcpts {
		rep := c.cmd("RCPT TO:<%s>", r)
		rcptReplies = append(rcptReplies, rep)
		if strings.HasPrefix(rep, "250") {
			accepted++
		}
	}
	if accepted == 0 {
		c.cmd("RSET")
		return rcptReplies, nil
	}
	if r := c.cmd("DATA"); !strings.HasPrefix(r, "354") {
		c.t.Fatalf("DATA: %s", r)
	}
	io.WriteString(c.conn, strings.ReplaceAll(msg, "\n.", "\n..")+".\r\n")
	for i := 0; i < accepted; i++ {
		dataReplies = append(dataReplies, c.reply())
	}
	return rcptReplies, dataReplies
}
