// SPDX-License-Identifier: Apache-2.0

package pop3

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// backendLogin logs in on the backend as t says and returns the backend's
// +OK line ("+OK Logged in."), for the client.
//
// Like Dovecot's pop3-proxy: after the greeting, STLS when starttls=yes;
// XCLIENT when the greeting carries the [XCLIENT] code (Dovecot's
// pop3-login offers it to trusted peers only, and not in CAPA), pipelined
// with the login; USER then PASS for a normal login, AUTH PLAIN with an
// initial response (authzid = user, authcid = master) for a master-user
// login.
func backendLogin(ctx context.Context, b *gateway.BackendConn, c *gateway.ClientConn, t *gateway.Target, p *gateway.Pipeline) (string, error) {
	op := "backend " + t.Addr()
	greeting, err := b.ReadLine()
	if err != nil {
		return "", auth.Temporary(op+": greeting", err)
	}
	rest, ok := strings.CutPrefix(string(greeting), "+OK")
	if !ok {
		return "", auth.Temporary(op+": greeting", fmt.Errorf("backend greeted with %q", greeting))
	}
	xclient := strings.HasPrefix(strings.ToUpper(rest), " [XCLIENT]")
	if t.TLS == gateway.TLSStartTLS {
		if err := backendSTLS(ctx, b, p, t); err != nil {
			return "", err
		}
	}
	forward := xclient && !t.NotTrusted && !t.Forwarded
	if forward {
		writeXCLIENT(b, c)
	}
	// USER/PASS cannot carry a CR, LF or NUL (a SASL client may have sent
	// one); AUTH PLAIN's base64 can.
	usePass := t.Token == "" && t.Master == "" && lineSafe(t.User) && lineSafe(t.Password)
	switch {
	case t.Token != "":
		// The client's OAuth token, for the backend to check.
		fmt.Fprintf(b.W, "AUTH %s %s\r\n", t.TokenMech, base64.StdEncoding.EncodeToString(mechs.TokenMessage(t.TokenMech, t.User, t.Token)))
	case usePass:
		fmt.Fprintf(b.W, "USER %s\r\n", t.User)
	default:
		fmt.Fprintf(b.W, "AUTH PLAIN %s\r\n", plainResponse(t))
	}
	if err := b.W.Flush(); err != nil {
		return "", auth.Temporary(op+": login", err)
	}
	if forward {
		line, err := b.ReadLine()
		if err != nil {
			return "", auth.Temporary(op+": XCLIENT", err)
		}
		if !strings.HasPrefix(string(line), "+OK") {
			// The backend offered XCLIENT and refused ours: a bug or a
			// configuration mismatch that retrying will not mend.
			return "", auth.Internal(op+": XCLIENT", fmt.Errorf("backend said %q", line))
		}
	}
	line, err := b.ReadLine()
	if err != nil {
		return "", auth.Temporary(op+": login", err)
	}
	if usePass {
		if _, err := loginResult(op, string(line)); err != nil {
			return "", err
		}
		fmt.Fprintf(b.W, "PASS %s\r\n", t.Password)
		if err := b.W.Flush(); err != nil {
			return "", auth.Temporary(op+": login", err)
		}
		if line, err = b.ReadLine(); err != nil {
			return "", auth.Temporary(op+": login", err)
		}
	}
	if strings.HasPrefix(string(line), "+ ") || string(line) == "+" {
		if t.Token == "" {
			// PLAIN's initial response holds everything; a challenge means
			// the backend did not take it.
			return "", auth.Internal(op+": login", errors.New("unexpected AUTH PLAIN challenge"))
		}
		// An OAuth error challenge (RFC 7628 3.2.3): acknowledge it; the
		// backend then says -ERR.
		fmt.Fprintf(b.W, "%s\r\n", base64.StdEncoding.EncodeToString(mechs.TokenErrorAck(t.TokenMech)))
		if err := b.W.Flush(); err != nil {
			return "", auth.Temporary(op+": login", err)
		}
		if line, err = b.ReadLine(); err != nil {
			return "", auth.Temporary(op+": login", err)
		}
	}
	return loginResult(op, string(line))
}

// backendSTLS runs STLS (RFC 2595 4) and the TLS handshake. A backend
// that refuses STLS although the passdb says starttls=yes is
// misconfigured: an internal error.
func backendSTLS(ctx context.Context, b *gateway.BackendConn, p *gateway.Pipeline, t *gateway.Target) error {
	op := "backend " + t.Addr() + ": STLS"
	b.W.WriteString("STLS\r\n")
	if err := b.W.Flush(); err != nil {
		return auth.Temporary(op, err)
	}
	line, err := b.ReadLine()
	if err != nil {
		return auth.Temporary(op, err)
	}
	if !strings.HasPrefix(string(line), "+OK") {
		return auth.Internal(op, fmt.Errorf("starttls=yes, but the backend refused STLS: %q", line))
	}
	if err := b.StartTLS(ctx, p.BackendTLSConfig(t)); err != nil {
		return gateway.ClassifyTLS(op, err)
	}
	return nil
}

// writeXCLIENT queues the XCLIENT command that forwards the client's
// address, port and session, as Dovecot's pop3-proxy does (honoured by a
// backend that lists the gateway in login_trusted_networks). The TTL goes
// down by one per hop.
func writeXCLIENT(b *gateway.BackendConn, c *gateway.ClientConn) {
	b.W.WriteString("XCLIENT")
	if c.Remote.IsValid() {
		fmt.Fprintf(b.W, " ADDR=%s PORT=%d", c.Remote.Addr(), c.Remote.Port())
	}
	fmt.Fprintf(b.W, " SESSION=%s TTL=%d\r\n", c.Session, c.TTL-1)
}

// plainResponse is the SASL PLAIN message for t: authzid = user and
// authcid = master for a master-user login, else no authzid.
func plainResponse(t *gateway.Target) string {
	msg := "\x00" + t.User + "\x00" + t.Password
	if t.Master != "" {
		msg = t.User + "\x00" + t.Master + "\x00" + t.Password
	}
	return base64.StdEncoding.EncodeToString([]byte(msg))
}

// lineSafe reports whether s can be sent as a POP3 argument.
func lineSafe(s string) bool { return !strings.ContainsAny(s, "\r\n\x00") }

// loginResult classifies the backend's reply to USER, PASS or AUTH.
func loginResult(op, line string) (string, error) {
	if strings.HasPrefix(line, "+OK") {
		return line, nil
	}
	text, ok := strings.CutPrefix(line, "-ERR")
	if !ok {
		return "", auth.Internal(op+": login", fmt.Errorf("backend said %q", line))
	}
	text = strings.TrimPrefix(text, " ")
	code := strings.ToUpper(text)
	switch {
	case strings.HasPrefix(code, "[IN-USE]"):
		// RFC 2449 8.1.2: the mailbox is locked; the client may retry.
		return "", &inUseError{text: text, err: auth.Temporary(op+": login", fmt.Errorf("backend said -ERR %s", text))}
	case strings.HasPrefix(code, "[SYS/TEMP]") && gateway.BackendLimit(text) != nil:
		return "", auth.Temporary(op+": login", fmt.Errorf("backend said -ERR %s: %w", text, gateway.BackendLimit(text)))
	case strings.HasPrefix(code, "[SYS/TEMP]"), strings.HasPrefix(code, "[SYS/PERM]"):
		// RFC 3206 4: the backend's trouble, not the user's password.
		return "", auth.Temporary(op+": login", fmt.Errorf("backend said -ERR %s", text))
	}
	return "", &gateway.Refused{Status: auth.StatusPasswordMismatch}
}

// inUseError is a backend's [IN-USE] refusal (Dovecot's pop3_lock_session
// or mail_max_userip_connections): a temporary failure whose text the
// client gets unchanged.
type inUseError struct {
	text string // after "-ERR "
	err  error  // the temporary failure, for logs and auth.KindOf
}

func (e *inUseError) Error() string { return e.err.Error() }
func (e *inUseError) Unwrap() error { return e.err }

// Is makes it a gateway.ErrInUse too.
func (e *inUseError) Is(target error) bool { return target == gateway.ErrInUse }
