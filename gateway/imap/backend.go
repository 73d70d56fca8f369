// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// backendLogin logs in on the backend as t says, after forwarding the
// client's details with ID, and returns the backend's tagged OK line
// without its tag ("OK [CAPABILITY ...] Logged in"), for the client.
//
// Like Dovecot's imap-proxy, it pipelines ID and the login command, uses
// LOGIN for a normal login and AUTHENTICATE PLAIN for a master-user login
// (authzid = user, authcid = master).
func backendLogin(ctx context.Context, b *gateway.BackendConn, c *gateway.ClientConn, t *gateway.Target, p *gateway.Pipeline) (string, error) {
	op := "backend " + t.Addr()
	greeting, err := b.ReadLine()
	if err != nil {
		return "", auth.Temporary(op+": greeting", err)
	}
	caps, err := parseGreeting(greeting)
	if err != nil {
		return "", auth.Temporary(op+": greeting", err)
	}
	if caps == nil {
		if caps, err = requestCapabilities(b); err != nil {
			return "", auth.Temporary(op+": capability", err)
		}
	}
	if t.TLS == gateway.TLSStartTLS {
		if !caps["STARTTLS"] {
			return "", auth.Internal(op, errors.New("starttls=yes, but the backend does not offer STARTTLS"))
		}
		if err := backendStartTLS(ctx, b, p.BackendTLSConfig(t)); err != nil {
			return "", err
		}
		// RFC 9051 6.2.1: capabilities are asked again after TLS.
		if caps, err = requestCapabilities(b); err != nil {
			return "", auth.Temporary(op+": capability", err)
		}
	}
	if caps["ID"] && !t.NotTrusted && !t.Forwarded {
		writeID(b, c)
	}
	var saslResponse string
	sasl := func(mech string, msg []byte) {
		saslResponse = base64.StdEncoding.EncodeToString(msg)
		if caps["SASL-IR"] {
			fmt.Fprintf(b.W, "L AUTHENTICATE %s %s\r\n", mech, saslResponse)
			saslResponse = ""
		} else {
			fmt.Fprintf(b.W, "L AUTHENTICATE %s\r\n", mech)
		}
	}
	switch {
	case t.Token != "":
		// The client's OAuth token, for the backend to check.
		if !caps["AUTH="+t.TokenMech] {
			return "", auth.Internal(op, fmt.Errorf("the backend does not offer AUTH=%s for the client's token", t.TokenMech))
		}
		sasl(t.TokenMech, mechs.TokenMessage(t.TokenMech, t.User, t.Token))
	case t.Master != "":
		if !caps["AUTH=PLAIN"] {
			return "", auth.Internal(op, errors.New("master-user login needs AUTH=PLAIN, which the backend does not offer"))
		}
		sasl("PLAIN", []byte(t.User+"\x00"+t.Master+"\x00"+t.Password))
	default:
		if err := writeLogin(b, caps["LITERAL+"], t.User, t.Password); err != nil {
			return "", auth.Temporary(op+": login", err)
		}
	}
	if err := b.W.Flush(); err != nil {
		return "", auth.Temporary(op+": login", err)
	}
	for {
		line, err := b.ReadLine()
		if err != nil {
			return "", auth.Temporary(op+": login", err)
		}
		switch {
		case bytes.HasPrefix(line, []byte("+")):
			if saslResponse == "" {
				if t.Token == "" {
					return "", auth.Internal(op+": login", errors.New("unexpected continuation request"))
				}
				// The backend rejected the token with an error challenge
				// (RFC 7628 3.2.3): acknowledge it, then it says NO.
				saslResponse = base64.StdEncoding.EncodeToString(mechs.TokenErrorAck(t.TokenMech))
			}
			fmt.Fprintf(b.W, "%s\r\n", saslResponse)
			saslResponse = ""
			if err := b.W.Flush(); err != nil {
				return "", auth.Temporary(op+": login", err)
			}
		case bytes.HasPrefix(line, []byte("* BYE")):
			return "", auth.Temporary(op+": login", fmt.Errorf("backend said %q", line))
		case bytes.HasPrefix(line, []byte("L ")):
			return loginResult(op, string(line[2:]))
		}
		// Untagged data and the ID reply ("I OK"/"I NO") need no action.
	}
}

// backendStartTLS runs STARTTLS on the backend connection.
func backendStartTLS(ctx context.Context, b *gateway.BackendConn, cfg *tls.Config) error {
	op := "backend STARTTLS"
	b.W.WriteString("S STARTTLS\r\n")
	if err := b.W.Flush(); err != nil {
		return auth.Temporary(op, err)
	}
	for {
		line, err := b.ReadLine()
		if err != nil {
			return auth.Temporary(op, err)
		}
		if rest, ok := bytes.CutPrefix(line, []byte("S ")); ok {
			if !bytes.HasPrefix(bytes.ToUpper(rest), []byte("OK")) {
				return auth.Internal(op, fmt.Errorf("backend refused STARTTLS: %q", line))
			}
			break
		}
	}
	if err := b.StartTLS(ctx, cfg); err != nil {
		return gateway.ClassifyTLS(op, err)
	}
	return nil
}

// loginResult classifies the backend's tagged reply to the login.
func loginResult(op, rest string) (string, error) {
	status, text, _ := strings.Cut(rest, " ")
	switch strings.ToUpper(status) {
	case "OK":
		return rest, nil
	case "NO":
		if lim := gateway.BackendLimit(text); lim != nil {
			return "", auth.Temporary(op+": login", fmt.Errorf("backend said NO %s: %w", text, lim))
		}
		if t, ok := strings.CutPrefix(text, "[LIMIT] "); ok {
			return "", auth.Temporary(op+": login", fmt.Errorf("backend said NO %s: %w", text, &gateway.LimitError{Text: gateway.OneLine(t)}))
		}
		if strings.HasPrefix(text, "[INUSE]") {
			return "", auth.Temporary(op+": login", fmt.Errorf("backend said NO %s: %w", text, gateway.ErrInUse))
		}
		// Codes that say "not now" rather than "not you" (RFC 5530).
		for _, code := range []string{"[UNAVAILABLE]", "[SERVERBUG]", "[LIMIT]", "[INUSE]", "[CONTACTADMIN]"} {
			if strings.HasPrefix(text, code) {
				return "", auth.Temporary(op+": login", fmt.Errorf("backend said NO %s", text))
			}
		}
		return "", &gateway.Refused{Status: auth.StatusPasswordMismatch}
	}
	return "", auth.Internal(op+": login", fmt.Errorf("backend said %s %s", status, text))
}

// parseGreeting checks the greeting and returns the capabilities in it,
// or nil when it carries none.
func parseGreeting(line []byte) (map[string]bool, error) {
	s := string(line)
	switch {
	case strings.HasPrefix(s, "* OK"):
	case strings.HasPrefix(s, "* PREAUTH"):
		return nil, errors.New("backend greeted with PREAUTH; it must ask for a login")
	default:
		return nil, fmt.Errorf("backend greeted with %q", s)
	}
	i := strings.Index(s, "[CAPABILITY ")
	if i < 0 {
		return nil, nil
	}
	end := strings.IndexByte(s[i:], ']')
	if end < 0 {
		return nil, fmt.Errorf("broken CAPABILITY code in greeting %q", s)
	}
	return capSet(s[i+len("[CAPABILITY ") : i+end]), nil
}

func requestCapabilities(b *gateway.BackendConn) (map[string]bool, error) {
	b.W.WriteString("C CAPABILITY\r\n")
	if err := b.W.Flush(); err != nil {
		return nil, err
	}
	var caps map[string]bool
	for {
		line, err := b.ReadLine()
		if err != nil {
			return nil, err
		}
		s := string(line)
		if rest, ok := strings.CutPrefix(s, "* CAPABILITY "); ok {
			caps = capSet(rest)
		}
		if strings.HasPrefix(s, "C ") {
			if caps == nil {
				return nil, fmt.Errorf("no capabilities: %q", s)
			}
			return caps, nil
		}
	}
}

func capSet(s string) map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(s) {
		m[strings.ToUpper(c)] = true
	}
	return m
}

// writeID queues the ID command that forwards the client's details
// (Dovecot's x-* keys, honoured by a backend that lists the gateway in
// login_trusted_networks). The TTL goes down by one per hop.
func writeID(b *gateway.BackendConn, c *gateway.ClientConn) {
	b.W.WriteString(`I ID (`)
	pair := func(k, v string) { fmt.Fprintf(b.W, `"%s" %s `, k, quote(v)) }
	pair("x-session-id", c.Session)
	if c.Remote.IsValid() {
		pair("x-originating-ip", c.Remote.Addr().String())
		pair("x-originating-port", strconv.Itoa(int(c.Remote.Port())))
	}
	if c.Local.IsValid() {
		pair("x-connected-ip", c.Local.Addr().String())
		pair("x-connected-port", strconv.Itoa(int(c.Local.Port())))
	}
	fmt.Fprintf(b.W, `"x-proxy-ttl" "%d")`+"\r\n", c.TTL-1)
}

// writeLogin queues LOGIN user pass, as quoted strings where possible and
// literals otherwise. Without LITERAL+ a literal needs the backend's
// continuation first.
func writeLogin(b *gateway.BackendConn, literalPlus bool, user, pass string) error {
	b.W.WriteString("L LOGIN")
	for _, s := range []string{user, pass} {
		b.W.WriteByte(' ')
		if canQuote(s) {
			b.W.WriteString(quote(s))
			continue
		}
		if literalPlus {
			fmt.Fprintf(b.W, "{%d+}\r\n%s", len(s), s)
			continue
		}
		fmt.Fprintf(b.W, "{%d}\r\n", len(s))
		if err := b.W.Flush(); err != nil {
			return err
		}
		if err := awaitContinuation(b); err != nil {
			return err
		}
		b.W.WriteString(s)
	}
	b.W.WriteString("\r\n")
	return nil
}

// awaitContinuation reads until the backend's "+" go-ahead for a
// synchronizing literal, passing over the replies to the pipelined ID.
func awaitContinuation(b *gateway.BackendConn) error {
	for {
		line, err := b.ReadLine()
		if err != nil {
			return err
		}
		switch {
		case bytes.HasPrefix(line, []byte("+")):
			return nil
		case bytes.HasPrefix(line, []byte("* ")), bytes.HasPrefix(line, []byte("I ")):
			continue
		}
		return fmt.Errorf("backend refused a literal: %q", line)
	}
}

// canQuote reports whether s fits an IMAP quoted string: 7-bit text
// without CR, LF or NUL.
func canQuote(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || c >= 0x80 {
			return false
		}
	}
	return true
}

// quote returns s as an IMAP quoted string; callers check canQuote.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
