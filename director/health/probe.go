// SPDX-License-Identifier: Apache-2.0

package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// maxLine bounds a line a backend sends; maxLiteral a literal in it.
const (
	maxLine    = 8192
	maxLiteral = 64 << 10
	maxLines   = 200 // lines of one reply
)

// probe checks ip once, within the timeout. A nil error means healthy;
// note says what a passed check could not test.
func (c *Checker) probe(ctx context.Context, ip string) (note string, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(ip, strconv.Itoa(c.cfg.Port(ip)))
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", c.explain(ctx, "connect", err)
	}
	defer conn.Close()
	dl, _ := ctx.Deadline()
	conn.SetDeadline(dl)
	// Leadership lost (or shutdown): end the conversation at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	v := &conv{conn: conn, r: bufio.NewReader(conn), ip: ip}
	if c.cfg.TLS == TLSImplicit {
		if err := v.startTLS(ctx, c.tlsConfig(ip)); err != nil {
			return "", c.explain(ctx, "TLS", err)
		}
	}
	if c.cfg.Check == CheckTCP {
		return "", nil
	}
	var step string
	switch c.cfg.Protocol {
	case IMAP:
		step, note, err = c.imap(ctx, v)
	case POP3:
		step, note, err = c.pop3(ctx, v)
	case LMTP:
		step, note, err = c.lmtp(ctx, v)
	case Sieve:
		step, note, err = c.sieve(ctx, v)
	}
	if err != nil {
		return "", c.explain(ctx, step, err)
	}
	return note, nil
}

// explain names the step that failed, and a timeout as such.
func (c *Checker) explain(ctx context.Context, step string, err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s: check cancelled", step)
		}
		return fmt.Errorf("%s: no answer within %v", step, c.cfg.Timeout)
	}
	return fmt.Errorf("%s: %w", step, err)
}

func (c *Checker) tlsConfig(ip string) *tls.Config {
	var t *tls.Config
	if c.cfg.TLSConfig != nil {
		t = c.cfg.TLSConfig.Clone()
	} else {
		t = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if t.ServerName == "" {
		t.ServerName = ip
	}
	return t
}

// plaintextRefusedNote is the note of a login check the backend refused to
// take in cleartext: the backend is fine, the check's configuration (or the
// backend's login_trusted_networks) is not.
func plaintextRefusedNote(what string) string {
	return "login not tested: the backend refuses plaintext logins on this connection (" + what +
		"); add the gateways to the backend's login_trusted_networks, or set director.health.tls"
}

func plaintextRefused(reply string) bool {
	return strings.Contains(reply, "PRIVACYREQUIRED") || strings.Contains(reply, "Plaintext authentication disallowed")
}

// conv is one conversation with a backend.
type conv struct {
	conn net.Conn
	r    *bufio.Reader
	ip   string
	tls  bool
}

func (v *conv) send(line string) error {
	_, err := io.WriteString(v.conn, line+"\r\n")
	return err
}

// line reads one line, without its line end.
func (v *conv) line() (string, error) {
	var b []byte
	for {
		chunk, more, err := v.r.ReadLine()
		if err != nil {
			if err == io.EOF {
				err = errors.New("connection closed")
			}
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > maxLine {
			return "", errors.New("line too long")
		}
		if !more {
			return string(b), nil
		}
	}
}

// lineLit reads a line of IMAP or ManageSieve, with the literals ({n} at
// the end of a line) it carries skipped.
func (v *conv) lineLit() (string, error) {
	l, err := v.line()
	for err == nil {
		n, ok := literalAtEnd(l)
		if !ok {
			return l, nil
		}
		if n > maxLiteral {
			return "", errors.New("literal too long")
		}
		if _, err = io.CopyN(io.Discard, v.r, int64(n)); err != nil {
			break
		}
		var rest string
		rest, err = v.line()
		l += " ... " + rest
	}
	return "", err
}

func literalAtEnd(l string) (int, bool) {
	if !strings.HasSuffix(l, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(l[i+1:len(l)-1], "+"))
	return n, err == nil && n >= 0
}

func (v *conv) startTLS(ctx context.Context, cfg *tls.Config) error {
	if v.r.Buffered() > 0 {
		return errors.New("the backend sent data before the TLS handshake")
	}
	tc := tls.Client(v.conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	v.conn, v.r, v.tls = tc, bufio.NewReader(tc), true
	return nil
}

func short(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// --- IMAP

func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// imapTagged reads until the reply tagged tag and returns it without the
// tag; an untagged BYE fails.
func (v *conv) imapTagged(tag string) (string, error) {
	for i := 0; i < maxLines; i++ {
		l, err := v.lineLit()
		if err != nil {
			return "", err
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return rest, nil
		}
		if strings.HasPrefix(l, "* BYE") {
			return "", fmt.Errorf("the backend said %q", short(l))
		}
	}
	return "", errors.New("reply too long")
}

func (c *Checker) imap(ctx context.Context, v *conv) (step, note string, err error) {
	g, err := v.lineLit()
	if err != nil {
		return "greeting", "", err
	}
	if !strings.HasPrefix(g, "* OK") {
		return "greeting", "", fmt.Errorf("want * OK, got %q", short(g))
	}
	if c.cfg.TLS == TLSStartTLS {
		v.send("S STARTTLS")
		r, err := v.imapTagged("S")
		if err != nil {
			return "STARTTLS", "", err
		}
		if !strings.HasPrefix(r, "OK") {
			return "STARTTLS", "", fmt.Errorf("%q", short(r))
		}
		if err := v.startTLS(ctx, c.tlsConfig(v.ip)); err != nil {
			return "STARTTLS", "", err
		}
	}
	if c.cfg.Check == CheckBanner {
		v.send("Q LOGOUT")
		return "", "", nil
	}
	if !v.tls && strings.Contains(strings.ToUpper(g), " LOGINDISABLED") {
		v.send("Q LOGOUT")
		return "", plaintextRefusedNote("IMAP LOGINDISABLED"), nil
	}
	v.send("L LOGIN " + imapQuote(c.cfg.LoginUser) + " " + imapQuote(c.cfg.LoginPassword))
	r, err := v.imapTagged("L")
	if err != nil {
		return "LOGIN", "", err
	}
	switch {
	case strings.HasPrefix(r, "OK"):
	case plaintextRefused(r):
		note = plaintextRefusedNote("IMAP " + short(r))
	default:
		return "LOGIN as " + c.cfg.LoginUser, "", fmt.Errorf("%q", short(r))
	}
	v.send("Q LOGOUT")
	v.imapTagged("Q") // a polite goodbye; its outcome does not matter
	return "", note, nil
}

// --- POP3

func (c *Checker) pop3(ctx context.Context, v *conv) (step, note string, err error) {
	ok := func(cmd string) error {
		if cmd != "" {
			if err := v.send(cmd); err != nil {
				return err
			}
		}
		l, err := v.line()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, "+OK") {
			return &pop3Err{l}
		}
		return nil
	}
	if err := ok(""); err != nil {
		return "greeting", "", err
	}
	if c.cfg.TLS == TLSStartTLS {
		if err := ok("STLS"); err != nil {
			return "STLS", "", err
		}
		if err := v.startTLS(ctx, c.tlsConfig(v.ip)); err != nil {
			return "STLS", "", err
		}
	}
	if c.cfg.Check == CheckBanner {
		v.send("QUIT")
		return "", "", nil
	}
	for _, cmd := range []struct{ step, line string }{
		{"USER " + c.cfg.LoginUser, "USER " + c.cfg.LoginUser},
		{"PASS for " + c.cfg.LoginUser, "PASS " + c.cfg.LoginPassword},
	} {
		err := ok(cmd.line)
		var pe *pop3Err
		if errors.As(err, &pe) && plaintextRefused(pe.reply) {
			v.send("QUIT")
			return "", plaintextRefusedNote("POP3 " + short(pe.reply)), nil
		}
		if err != nil {
			return cmd.step, "", err
		}
	}
	v.send("QUIT")
	v.line()
	return "", "", nil
}

type pop3Err struct{ reply string }

func (e *pop3Err) Error() string { return fmt.Sprintf("%q", short(e.reply)) }

// --- LMTP

// smtpReply reads a reply and returns its code and lines.
func (v *conv) smtpReply() (int, string, error) {
	var text []string
	for i := 0; i < maxLines; i++ {
		l, err := v.line()
		if err != nil {
			return 0, "", err
		}
		if len(l) < 3 {
			return 0, "", fmt.Errorf("bad reply %q", short(l))
		}
		code, err := strconv.Atoi(l[:3])
		if err != nil {
			return 0, "", fmt.Errorf("bad reply %q", short(l))
		}
		text = append(text, l)
		if len(l) == 3 || l[3] != '-' {
			return code, strings.Join(text, " / "), nil
		}
	}
	return 0, "", errors.New("reply too long")
}

func (c *Checker) lmtp(ctx context.Context, v *conv) (step, note string, err error) {
	expect := func(cmd string, want int) error {
		if cmd != "" {
			if err := v.send(cmd); err != nil {
				return err
			}
		}
		code, text, err := v.smtpReply()
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("want %d, got %q", want, short(text))
		}
		return nil
	}
	if err := expect("", 220); err != nil {
		return "greeting", "", err
	}
	if c.cfg.Check == CheckBanner && c.cfg.TLS != TLSStartTLS {
		v.send("QUIT")
		return "", "", nil
	}
	lhlo := "LHLO " + c.cfg.HeloName
	if err := expect(lhlo, 250); err != nil {
		return "LHLO", "", err
	}
	if c.cfg.TLS == TLSStartTLS {
		if err := expect("STARTTLS", 220); err != nil {
			return "STARTTLS", "", err
		}
		if err := v.startTLS(ctx, c.tlsConfig(v.ip)); err != nil {
			return "STARTTLS", "", err
		}
		if err := expect(lhlo, 250); err != nil {
			return "LHLO after STARTTLS", "", err
		}
	}
	if c.cfg.Check == CheckBanner {
		v.send("QUIT")
		return "", "", nil
	}
	if err := expect("MAIL FROM:<>", 250); err != nil {
		return "MAIL FROM", "", err
	}
	if err := expect("RCPT TO:<"+c.cfg.LoginUser+">", 250); err != nil {
		return "RCPT TO:<" + c.cfg.LoginUser + ">", "", err
	}
	v.send("QUIT")
	v.smtpReply()
	return "", "", nil
}

// --- ManageSieve

// sieveReply reads capability lines up to the status line (OK, NO, BYE)
// and returns both.
func (v *conv) sieveReply() (caps map[string]string, status string, err error) {
	caps = map[string]string{}
	for i := 0; i < maxLines; i++ {
		l, err := v.lineLit()
		if err != nil {
			return nil, "", err
		}
		if strings.HasPrefix(l, `"`) {
			words := sieveStrings(l)
			if len(words) > 0 {
				val := ""
				if len(words) > 1 {
					val = words[1]
				}
				caps[strings.ToUpper(words[0])] = val
			}
			continue
		}
		return caps, l, nil
	}
	return nil, "", errors.New("reply too long")
}

// sieveStrings returns the quoted strings of a line.
func sieveStrings(l string) []string {
	var out []string
	for {
		i := strings.IndexByte(l, '"')
		if i < 0 {
			return out
		}
		l = l[i+1:]
		var b strings.Builder
		j := 0
		for ; j < len(l) && l[j] != '"'; j++ {
			if l[j] == '\\' && j+1 < len(l) {
				j++
			}
			b.WriteByte(l[j])
		}
		out = append(out, b.String())
		if j >= len(l) {
			return out
		}
		l = l[j+1:]
	}
}

func (c *Checker) sieve(ctx context.Context, v *conv) (step, note string, err error) {
	caps, st, err := v.sieveReply()
	if err != nil {
		return "greeting", "", err
	}
	if !strings.HasPrefix(st, "OK") {
		return "greeting", "", fmt.Errorf("want capabilities and OK, got %q", short(st))
	}
	if c.cfg.TLS == TLSStartTLS {
		v.send("STARTTLS")
		if _, st, err := v.sieveReply(); err != nil || !strings.HasPrefix(st, "OK") {
			if err == nil {
				err = fmt.Errorf("%q", short(st))
			}
			return "STARTTLS", "", err
		}
		if err := v.startTLS(ctx, c.tlsConfig(v.ip)); err != nil {
			return "STARTTLS", "", err
		}
		if caps, st, err = v.sieveReply(); err != nil || !strings.HasPrefix(st, "OK") {
			if err == nil {
				err = fmt.Errorf("want capabilities and OK, got %q", short(st))
			}
			return "capabilities after STARTTLS", "", err
		}
	}
	if c.cfg.Check == CheckBanner {
		v.send("LOGOUT")
		return "", "", nil
	}
	if sasl, ok := caps["SASL"]; ok && !v.tls && !hasWord(sasl, "PLAIN") {
		v.send("LOGOUT")
		return "", plaintextRefusedNote(fmt.Sprintf("ManageSieve SASL %q", sasl)), nil
	}
	ir := base64.StdEncoding.EncodeToString([]byte("\x00" + c.cfg.LoginUser + "\x00" + c.cfg.LoginPassword))
	v.send(`AUTHENTICATE "PLAIN" "` + ir + `"`)
	_, st, err = v.sieveReply()
	if err != nil {
		return "AUTHENTICATE", "", err
	}
	switch {
	case strings.HasPrefix(st, "OK"):
	case plaintextRefused(st):
		note = plaintextRefusedNote("ManageSieve " + short(st))
	default:
		return "AUTHENTICATE as " + c.cfg.LoginUser, "", fmt.Errorf("%q", short(st))
	}
	v.send("LOGOUT")
	v.sieveReply()
	return "", note, nil
}

func hasWord(list, w string) bool {
	for _, f := range strings.Fields(list) {
		if strings.EqualFold(f, w) {
			return true
		}
	}
	return false
}
