// SPDX-License-Identifier: Apache-2.0

package integration

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// client is a minimal IMAP client for transcripts: it sends lines and
// collects responses up to the tagged one.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
}

// dial connects to addr from the loopback address from ("" for any).
func dial(t testing.TB, addr, from string) *client {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second}
	if from != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	return wrapClient(t, conn)
}

// wrapClient reads the greeting on an established connection.
func wrapClient(t testing.TB, conn net.Conn) *client {
	t.Helper()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	c := &client{t: t, conn: conn, r: bufio.NewReaderSize(conn, 64*1024)}
	if g := c.line(); !strings.HasPrefix(g, "* OK") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *client) close() { c.conn.Close() }

func (c *client) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s+"\r\n"); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// do sends a tagged command and returns the untagged lines and the tagged
// status line (without its tag).
func (c *client) do(format string, args ...any) (untagged []string, status string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.send(tag + " " + fmt.Sprintf(format, args...))
	return c.readUntil(tag)
}

func (c *client) readUntil(tag string) (untagged []string, status string) {
	c.t.Helper()
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

// ok runs a command that must succeed.
func (c *client) ok(format string, args ...any) []string {
	c.t.Helper()
	u, st := c.do(format, args...)
	if !strings.HasPrefix(st, "OK") {
		c.t.Fatalf("%s: %s", fmt.Sprintf(format, args...), st)
	}
	return u
}

func (c *client) login(user, pass string) string {
	c.t.Helper()
	_, st := c.do("LOGIN %s %s", quoted(user), quoted(pass))
	return st
}

func (c *client) authPlain(authz, user, pass string) string {
	c.t.Helper()
	ir := base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
	_, st := c.do("AUTHENTICATE PLAIN %s", ir)
	return st
}

// appendMsg APPENDs msg to INBOX with a synchronizing literal.
func (c *client) appendMsg(msg []byte) string {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.send(fmt.Sprintf("%s APPEND INBOX {%d}", tag, len(msg)))
	if l := c.line(); !strings.HasPrefix(l, "+") {
		c.t.Fatalf("APPEND: no continuation: %q", l)
	}
	if _, err := c.conn.Write(msg); err != nil {
		c.t.Fatal(err)
	}
	c.send("")
	_, st := c.readUntil(tag)
	return st
}

// fetchBody fetches message seq's BODY.PEEK[] and returns its bytes.
func (c *client) fetchBody(seq int) []byte {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	c.send(fmt.Sprintf("%s FETCH %d BODY.PEEK[]", tag, seq))
	var body []byte
	for {
		l := c.line()
		if strings.HasPrefix(l, "* ") && strings.Contains(l, "FETCH") && strings.HasSuffix(l, "}") {
			var n int
			fmt.Sscanf(l[strings.LastIndexByte(l, '{'):], "{%d}", &n)
			body = make([]byte, n)
			if _, err := io.ReadFull(c.r, body); err != nil {
				c.t.Fatal(err)
			}
			continue
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				c.t.Fatalf("FETCH: %s", rest)
			}
			return body
		}
	}
}

func quoted(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
