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
	// mailQueued: MAIL FROM waits in the writer for the first RCPT TO.
	mailQueued bool
	forget     func() // undoes CloseOnCut
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
		// XCLIENT resets the session: greet again. With PIPELINING the
		// LHLO goes in the same write, one round trip instead of two;
		// a backend that refuses XCLIENT answers the LHLO too, and the
		// connection is given up either way.
		pipelined := hasCap(be.caps, "PIPELINING")
		xclient := xclientLine(c, be.caps["XCLIENT"])
		var r reply
		var err error
		if pipelined {
			b.W.WriteString(xclient + "\r\n")
			err = be.sendLHLO(s.srv.hostname())
			if err == nil {
				r, err = be.read()
			}
		} else {
			r, err = be.cmd(xclient)
		}
		if err != nil || r.code/100 != 2 {
			return fail("XCLIENT", fmtErr(r, err))
		}
		if pipelined {
			err = be.readLHLO()
		} else {
			err = be.lhlo(s.srv.hostname())
		}
		if err != nil {
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
	if err := be.sendLHLO(name); err != nil {
		return err
	}
	return be.readLHLO()
}

// sendLHLO writes LHLO and sends whatever the writer holds.
func (be *backend) sendLHLO(name string) error {
	if _, err := be.conn.W.WriteString("LHLO " + name + "\r\n"); err != nil {
		return err
	}
	return be.conn.W.Flush()
}

// readLHLO reads LHLO's reply and keeps the keywords.
func (be *backend) readLHLO() error {
	lines, err := be.readLines()
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
	return be.cmd(be.mailLine(from, params))
}

// queueMail writes MAIL FROM without sending it: with PIPELINING it goes
// out with the first RCPT TO (RFC 2920), one round trip instead of two;
// rcptTo reads its reply.
func (be *backend) queueMail(from string, params map[string]string) {
	be.conn.W.WriteString(be.mailLine(from, params) + "\r\n")
	be.mailQueued = true
}

// rcptTo sends RCPT TO (after a queued MAIL FROM) and reads the replies:
// mail is the queued MAIL FROM's (zero when none was queued).
func (be *backend) rcptTo(to string) (mail, rcpt reply, err error) {
	line := fmt.Sprintf("RCPT TO:<%s>", to)
	if !be.mailQueued {
		rcpt, err = be.cmd(line)
		return reply{}, rcpt, err
	}
	be.mailQueued = false
	if _, err := be.conn.W.WriteString(line + "\r\n"); err != nil {
		return reply{}, reply{}, err
	}
	if err := be.conn.W.Flush(); err != nil {
		return reply{}, reply{}, err
	}
	if mail, err = be.read(); err != nil {
		return mail, reply{}, err
	}
	// The RCPT's reply comes whatever MAIL's was (a 503 after a refused
	// sender): read it to stay in step.
	rcpt, err = be.read()
	return mail, rcpt, err
}

func (be *backend) mailLine(from string, params map[string]string) string {
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
	return b.String()
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
