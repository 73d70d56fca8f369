// SPDX-License-Identifier: Apache-2.0

package doveadm

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/gateway"
)

// backend is a doveadm connection to one backend, authenticated.
type backend struct {
	conn *gateway.BackendConn
	in   *demux
}

// dialBackend connects to t's backend and authenticates as Dovecot's
// doveadm client does (server-connection.c): our version line; the
// server's version line (before or after its +/-, as 2.2.33 sent it
// after); on "-", STARTTLS when the passdb said starttls=yes, then PLAIN
// with the doveadm password; "+" ends it. No PROXY header is sent:
// Dovecot's doveadm client sends none, and a backend's doveadm listener
// would not expect one. Errors are classified: a backend that does not
// answer is temporary, one that refuses our password or cannot do
// STARTTLS is internal (configuration).
func (s *session) dialBackend(ctx context.Context, t *gateway.Target) (*backend, error) {
	p := s.srv.Pipeline
	conn, err := p.Dial(ctx, t)
	if err != nil {
		return nil, err
	}
	b := gateway.NewBackendConn(conn)
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	op := "backend " + t.Addr()
	fail := func(err error) (*backend, error) {
		b.Close()
		if auth.KindOf(err) == auth.KindInternal {
			return nil, err
		}
		return nil, auth.Temporary(op, err)
	}
	if t.TLS == gateway.TLSImplicit {
		if err := b.StartTLS(ctx, p.BackendTLSConfig(t)); err != nil {
			return fail(gateway.ClassifyTLS(op+": TLS", err))
		}
	}
	b.W.WriteString(serverVersionLine + "\n")
	if err := b.W.Flush(); err != nil {
		return fail(err)
	}
	minor, versionSeen, authSent, tlsDone := 0, false, false, t.TLS != gateway.TLSStartTLS
	for {
		l, err := b.ReadLine()
		if err != nil {
			return fail(err)
		}
		line := string(l)
		switch {
		case !versionSeen && strings.HasPrefix(line, "VERSION\t"):
			m, ok := parseVersion(line, "doveadm-client")
			if !ok {
				return fail(auth.Internal(op, fmt.Errorf("not a compatible doveadm server: %q", line)))
			}
			minor, versionSeen = m, true
		case line == "+":
			b.Conn().SetDeadline(time.Time{})
			return &backend{conn: b, in: &demux{r: b.R, mux: minor > 0}}, nil
		case line == "-" && authSent:
			return fail(auth.Internal(op, errors.New("the backend refused the doveadm password (doveadm.password must be the backends' doveadm_password)")))
		case line == "-":
			if !tlsDone {
				if minor < 2 {
					return fail(auth.Internal(op, errors.New("starttls=yes, but the backend's doveadm server does not offer STARTTLS")))
				}
				b.W.WriteString("STARTTLS\n")
				if err := b.W.Flush(); err != nil {
					return fail(err)
				}
				if err := b.StartTLS(ctx, p.BackendTLSConfig(t)); err != nil {
					return fail(gateway.ClassifyTLS(op+": STARTTLS", err))
				}
				tlsDone = true
			}
			if s.srv.Password == "" {
				return fail(auth.Internal(op, errors.New("the backend asks for a doveadm password, and none is configured")))
			}
			b.W.WriteString("PLAIN\t" + base64.StdEncoding.EncodeToString([]byte("\x00doveadm\x00"+s.srv.Password)) + "\n")
			if err := b.W.Flush(); err != nil {
				return fail(err)
			}
			authSent = true
		default:
			return fail(fmt.Errorf("unexpected handshake line %s", printable(l)))
		}
	}
}

func (b *backend) close() { b.conn.Close() }
