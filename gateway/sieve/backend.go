// SPDX-License-Identifier: Apache-2.0

package sieve

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/mechs"
)

// Bounds on what a backend may send before login: it is trusted more than
// a client, but not to send an endless capability list.
const (
	maxBackendLiteral = 64 * 1024
	maxCapLines       = 100
)

// backendLogin logs in on the backend as t says and returns the backend's
// OK line for the client. Like Pigeonhole's managesieve-proxy, it reads
// the capability greeting, runs STARTTLS when t asks for it (and reads
// the capabilities sent again), forwards the client with XCLIENT when
// the backend offers it, and logs in with AUTHENTICATE "PLAIN": authzid
// = user and authcid = master for a master-user login, else authcid =
// user alone.
func backendLogin(ctx context.Context, b *gateway.BackendConn, c *gateway.ClientConn, t *gateway.Target, p *gateway.Pipeline) (string, error) {
	op := "backend " + t.Addr()
	caps, err := readCapabilities(b)
	if err != nil {
		return "", auth.Temporary(op+": greeting", err)
	}
	if t.TLS == gateway.TLSStartTLS {
		if _, ok := caps["STARTTLS"]; !ok {
			return "", auth.Internal(op, errors.New("starttls=yes, but the backend does not offer STARTTLS"))
		}
		if err := backendStartTLS(ctx, b, p, t); err != nil {
			return "", err
		}
		// RFC 5804 2.2: the server sends its capabilities again.
		if caps, err = readCapabilities(b); err != nil {
			return "", auth.Temporary(op+": capabilities after STARTTLS", err)
		}
	}
	if !hasWord(caps["SASL"], "PLAIN") {
		// A Dovecot backend hides PLAIN from an insecure connection
		// (disable_plaintext_auth): our configuration's problem.
		return "", auth.Internal(op, fmt.Errorf("the backend offers no SASL PLAIN (SASL %q); does it want TLS or login_trusted_networks?", caps["SASL"]))
	}
	_, xclient := caps["XCLIENT"]
	xclient = xclient && !t.NotTrusted && !t.Forwarded
	if xclient {
		writeXCLIENT(b, c)
	}
	// Pigeonhole quotes the mechanism and the initial response.
	mech, msg := "PLAIN", []byte(t.User+"\x00"+t.Password)
	switch {
	case t.Token != "":
		// The client's OAuth token, for the backend to check.
		mech, msg = t.TokenMech, mechs.TokenMessage(t.TokenMech, t.User, t.Token)
	case t.Master != "":
		msg = []byte(t.User + "\x00" + t.Master + "\x00" + t.Password)
	default:
		msg = []byte("\x00" + t.User + "\x00" + t.Password)
	}
	fmt.Fprintf(b.W, "AUTHENTICATE \"%s\" \"%s\"\r\n", mech, base64.StdEncoding.EncodeToString(msg))
	if err := b.W.Flush(); err != nil {
		return "", auth.Temporary(op+": login", err)
	}
	if xclient {
		r, raw, err := readResponse(b)
		switch {
		case err != nil:
			return "", auth.Temporary(op+": XCLIENT", err)
		case r.status == "BYE":
			return "", auth.Temporary(op+": XCLIENT", fmt.Errorf("backend said %q", raw))
		case r.status != "OK":
			// Offered but refused: the backend does not list us in
			// login_trusted_networks after all.
			return "", auth.Internal(op+": XCLIENT", fmt.Errorf("backend said %q", raw))
		}
	}
	r, raw, err := readResponse(b)
	if err != nil {
		return "", auth.Temporary(op+": login", err)
	}
	if r.status == "" && t.Token != "" {
		// An OAuth error challenge (RFC 7628 3.2.3): acknowledge it; the
		// backend then says NO.
		fmt.Fprintf(b.W, "\"%s\"\r\n", base64.StdEncoding.EncodeToString(mechs.TokenErrorAck(t.TokenMech)))
		if err := b.W.Flush(); err != nil {
			return "", auth.Temporary(op+": login", err)
		}
		if r, raw, err = readResponse(b); err != nil {
			return "", auth.Temporary(op+": login", err)
		}
	}
	return raw, loginResult(op, r, raw)
}

// loginResult classifies the backend's reply to AUTHENTICATE.
func loginResult(op string, r *response, raw string) error {
	switch r.status {
	case "OK":
		return nil
	case "BYE":
		return auth.Temporary(op+": login", fmt.Errorf("backend said %q", raw))
	case "NO":
		switch r.code {
		case "TRYLATER":
			if lim := gateway.BackendLimit(raw); lim != nil {
				lim.Text = strings.TrimSuffix(lim.Text, `"`)
				return auth.Temporary(op+": login", fmt.Errorf("backend said %q: %w", raw, lim))
			}
			return auth.Temporary(op+": login", fmt.Errorf("backend said %q", raw))
		case "ENCRYPT-NEEDED", "AUTH-TOO-WEAK":
			// Not the user's fault: the backend wants what we did not do.
			return auth.Internal(op+": login", fmt.Errorf("backend said %q", raw))
		}
		return &gateway.Refused{Status: auth.StatusPasswordMismatch}
	}
	// A data line: PLAIN with an initial response needs no challenge.
	return auth.Internal(op+": login", fmt.Errorf("unexpected SASL challenge %q", raw))
}

// backendStartTLS runs STARTTLS on the backend connection.
func backendStartTLS(ctx context.Context, b *gateway.BackendConn, p *gateway.Pipeline, t *gateway.Target) error {
	op := "backend " + t.Addr() + ": STARTTLS"
	b.W.WriteString("STARTTLS\r\n")
	if err := b.W.Flush(); err != nil {
		return auth.Temporary(op, err)
	}
	r, raw, err := readResponse(b)
	switch {
	case err != nil:
		return auth.Temporary(op, err)
	case r.status == "BYE":
		return auth.Temporary(op, fmt.Errorf("backend said %q", raw))
	case r.status != "OK":
		return auth.Internal(op, fmt.Errorf("backend refused STARTTLS: %q", raw))
	}
	if err := b.StartTLS(ctx, p.BackendTLSConfig(t)); err != nil {
		return gateway.ClassifyTLS(op, err)
	}
	return nil
}

// readCapabilities reads capability lines up to the OK that ends them
// (the greeting, or the list sent again after STARTTLS) and returns them
// by upper-case name.
func readCapabilities(b *gateway.BackendConn) (map[string]string, error) {
	caps := map[string]string{}
	for range maxCapLines {
		r, raw, err := readResponse(b)
		if err != nil {
			return nil, err
		}
		switch r.status {
		case "OK":
			return caps, nil
		case "NO", "BYE":
			return nil, fmt.Errorf("backend said %q", raw)
		}
		if r.data[0].kind != argString || len(r.data) > 2 {
			return nil, fmt.Errorf("malformed capability line %q", raw)
		}
		name := strings.ToUpper(r.data[0].s)
		caps[name] = ""
		if len(r.data) == 2 {
			caps[name] = r.data[1].s
		}
	}
	return nil, fmt.Errorf("more than %d capability lines", maxCapLines)
}

// readResponse reads one reply line (with its literals) and returns it
// parsed and raw, without the final CRLF.
func readResponse(b *gateway.BackendConn) (*response, string, error) {
	line, err := b.ReadLine()
	if err != nil {
		return nil, "", err
	}
	src := &backendSource{b: b}
	src.raw.Write(line)
	r, err := parseResponse(line, src, maxBackendLiteral)
	if err != nil {
		return nil, "", fmt.Errorf("%w in %q", err, src.raw.String())
	}
	return r, src.raw.String(), nil
}

// backendSource reads a backend line's literals, keeping the raw bytes.
type backendSource struct {
	b   *gateway.BackendConn
	raw strings.Builder
}

func (s *backendSource) literal(n int) ([]byte, error) {
	buf := make([]byte, n)
	if _, err := io.ReadFull(s.b.R, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, gateway.ErrBackendClosed
		}
		return nil, err
	}
	s.raw.WriteString("\r\n")
	s.raw.Write(buf)
	return buf, nil
}

func (s *backendSource) nextLine() ([]byte, error) {
	line, err := s.b.ReadLine()
	s.raw.Write(line)
	return line, err
}

// writeXCLIENT queues XCLIENT with the client's address, the session id
// and the proxy TTL less one hop, in Pigeonhole 0.5's syntax (a backend
// that lists the gateway in login_trusted_networks offers it and honours
// it).
func writeXCLIENT(b *gateway.BackendConn, c *gateway.ClientConn) {
	b.W.WriteString("XCLIENT")
	if c.Remote.IsValid() {
		fmt.Fprintf(b.W, " ADDR=%s PORT=%d", c.Remote.Addr(), c.Remote.Port())
	}
	fmt.Fprintf(b.W, " SESSION=%s TTL=%d\r\n", c.Session, c.TTL-1)
}

func hasWord(list, word string) bool {
	for _, w := range strings.Fields(list) {
		if strings.EqualFold(w, word) {
			return true
		}
	}
	return false
}
