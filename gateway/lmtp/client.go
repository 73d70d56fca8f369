// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
)

// backend is an LMTP connection to one backend, carrying the recipients
// routed there.
type backend struct {
	target *gateway.Target
	conn   *gateway.BackendConn
	caps   map[string]string // LHLO keywords (upper case) and their parameters
	rcpts  []*rcpt           // accepted by this backend, in order
	failed error             // set once the connection is lost
	forget func()            // undoes CloseOnCut
}

// dialBackend connects, greets (LHLO), upgrades with STARTTLS when asked,
// and forwards the client's details with XCLIENT when the backend offers
// it and trusts us.
func (s *session) dialBackend(ctx context.Context, t *gateway.Target) (*backend, error) {
	c := s.c
	b, err := s.srv.Pipeline.Connect(ctx, t, c.Remote, c.Local)
	if err != nil {
		return nil, err
	}
	be := &backend{target: t, conn: b, forget: c.CloseOnCut(b.Conn())}
	b.Conn().SetDeadline(time.Now().Add(s.srv.timeout()))
	op := "backend " + t.Addr()
	fail := func(stage string, err error) (*backend, error) {
		be.forget()
		b.Close()
		if auth.KindOf(err) == auth.KindInternal {
			return nil, err
		}
		return nil, auth.Temporary(op+": "+stage, err)
	}
	if r, err := be.read(); err != nil || r.code != 220 {
		return fail("greeting", fmtErr(r, err))
	}
	if err := be.lhlo(s.srv.hostname()); err != nil {
		return fail("LHLO", err)
	}
	if t.TLS == gateway.TLSStartTLS {
		if _, ok := be.caps["STARTTLS"]; !ok {
			return fail("STARTTLS", auth.Internal(op, errors.New("starttls=yes, but the backend does not offer STARTTLS")))
		}
		if r, err := be.cmd("STARTTLS"); err != nil || r.code != 220 {
			return fail("STARTTLS", fmtErr(r, err))
		}
		if err := b.StartTLS(ctx, s.srv.Pipeline.BackendTLSConfig(t)); err != nil {
			return fail("STARTTLS", gateway.ClassifyTLS(op+": TLS", err))
		}
		if err := be.lhlo(s.srv.hostname()); err != nil {
			return fail("LHLO", err)
		}
	}
	if _, ok := be.caps["XCLIENT"]; ok && !t.NotTrusted && !t.Forwarded {
		if r, err := be.cmd(xclientLine(c, be.caps["XCLIENT"])); err != nil || r.code/100 != 2 {
			return fail("XCLIENT", fmtErr(r, err))
		}
		// XCLIENT resets the session: greet again.
		if err := be.lhlo(s.srv.hostname()); err != nil {
			return fail("LHLO", err)
		}
	}
	return be, nil
}

func fmtErr(r reply, err error) error {
	if err != nil {
		return err
	}
	return fmt.Errorf("backend said %s", r)
}

// xclientLine forwards the client's address, session and the proxy TTL
// (Dovecot's LMTP reads ADDR, PORT, SESSION, TTL) — only the attributes
// the backend listed.
func xclientLine(c *gateway.ClientConn, offered string) string {
	want := map[string]bool{}
	for _, a := range strings.Fields(strings.ToUpper(offered)) {
		want[a] = true
	}
	var b strings.Builder
	b.WriteString("XCLIENT")
	add := func(k, v string) {
		if want[k] && v != "" {
			b.WriteString(" " + k + "=" + xtext(v))
		}
	}
	if c.Remote.IsValid() {
		add("ADDR", c.Remote.Addr().String())
		add("PORT", strconv.Itoa(int(c.Remote.Port())))
	}
	add("SESSION", c.Session)
	add("TTL", strconv.Itoa(c.TTL-1))
	return b.String()
}

// xtext encodes an XCLIENT value (RFC 3461 xtext).
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < '!' || ch > '~' || ch == '+' || ch == '=' {
			fmt.Fprintf(&b, "+%02X", ch)
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}

func (be *backend) lhlo(name string) error {
	lines, err := be.cmdLines("LHLO " + name)
	if err != nil {
		return err
	}
	r, err := parseReply(lines)
	if err != nil || r.code != 250 {
		return fmtErr(r, err)
	}
	be.caps = map[string]string{}
	for _, l := range lines[1:] {
		kw, param, _ := strings.Cut(strings.TrimSpace(l[4:]), " ")
		be.caps[strings.ToUpper(kw)] = param
	}
	return nil
}

// cmd sends one command and reads its reply.
func (be *backend) cmd(line string) (reply, error) {
	lines, err := be.cmdLines(line)
	if err != nil {
		return reply{}, err
	}
	return parseReply(lines)
}

func (be *backend) cmdLines(line string) ([]string, error) {
	if _, err := be.conn.W.WriteString(line + "\r\n"); err != nil {
		return nil, err
	}
	if err := be.conn.W.Flush(); err != nil {
		return nil, err
	}
	return be.readLines()
}

func (be *backend) read() (reply, error) {
	lines, err := be.readLines()
	if err != nil {
		return reply{}, err
	}
	return parseReply(lines)
}

// readLines reads one reply: lines "250-..." continue, "250 ..." ends.
func (be *backend) readLines() ([]string, error) {
	var lines []string
	for len(lines) < 100 {
		l, err := be.conn.ReadLine()
		if err != nil {
			return nil, err
		}
		s := string(l)
		lines = append(lines, s)
		if len(s) < 4 || s[3] != '-' {
			return lines, nil
		}
	}
	return nil, errors.New("reply too long")
}

// mail sends MAIL FROM with the parameters this backend announced.
func (be *backend) mail(from string, params map[string]string) (reply, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "MAIL FROM:<%s>", from)
	if v, ok := params["SIZE"]; ok && hasCap(be.caps, "SIZE") {
		b.WriteString(" SIZE=" + v)
	}
	if v, ok := params["BODY"]; ok && hasCap(be.caps, "8BITMIME") {
		b.WriteString(" BODY=" + v)
	}
	if _, ok := params["SMTPUTF8"]; ok && hasCap(be.caps, "SMTPUTF8") {
		b.WriteString(" SMTPUTF8")
	}
	return be.cmd(b.String())
}

func hasCap(caps map[string]string, k string) bool { _, ok := caps[k]; return ok }

// data streams the message (already dot-unstuffed, "\n" line ends) and
// returns one reply per accepted recipient, in order.
func (be *backend) data(msg io.Reader) ([]reply, error) {
	r, err := be.cmd("DATA")
	if err != nil {
		return nil, err
	}
	if r.code != 354 {
		// The backend refused the message as a whole: every recipient
		// gets its answer.
		out := make([]reply, len(be.rcpts))
		for i := range out {
			out[i] = r
		}
		return out, nil
	}
	dw := textproto.NewWriter(be.conn.W).DotWriter()
	if _, err := io.Copy(dw, msg); err != nil {
		return nil, err
	}
	if err := dw.Close(); err != nil {
		return nil, err
	}
	if err := be.conn.W.Flush(); err != nil {
		return nil, err
	}
	out := make([]reply, 0, len(be.rcpts))
	for range be.rcpts {
		r, err := be.read()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// close says QUIT (best effort) and closes.
func (be *backend) close() {
	if be.failed == nil {
		be.conn.Conn().SetDeadline(time.Now().Add(2 * time.Second))
		be.conn.W.WriteString("QUIT\r\n")
		be.conn.W.Flush()
	}
	be.forget()
	be.conn.Close()
}
