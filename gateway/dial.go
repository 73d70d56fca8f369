// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/maildirector/maildirector/auth"
)

// Retry policy for backend connections (Dovecot retries a refused or
// timed-out connection a few times, 1 s apart; we keep the gap short so a
// dead backend turns into [UNAVAILABLE] quickly).
const (
	retryDelay = 250 * time.Millisecond
	// immediateFailureAfter: once a backend has failed continuously this
	// long, a login tries it once instead of retrying (Dovecot's
	// proxy_host_immediate_failure_after).
	immediateFailureAfter = 30 * time.Second
)

// Connect dials t's backend for client c: the TCP connection (with
// retries), a PROXY v2 header when configured, and the TLS handshake for
// ssl=yes. Failures are temporary, except a backend certificate that does
// not verify, which is internal (configuration).
//
// A plain connection comes from the warm pool when it has one (see
// WarmPool).
func (p *Pipeline) Connect(ctx context.Context, t *Target, remote, local netip.AddrPort) (*BackendConn, error) {
	return p.connect(ctx, t, remote, local, false)
}

func (p *Pipeline) connect(ctx context.Context, t *Target, remote, local netip.AddrPort, fresh bool) (*BackendConn, error) {
	var conn net.Conn
	if !fresh && !p.SendProxyProtocol && t.TLS != TLSImplicit {
		conn = p.Warm.Take(t.Addr())
	}
	warm := conn != nil
	if !warm {
		var err error
		if conn, err = p.Dial(ctx, t); err != nil {
			return nil, err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if p.SendProxyProtocol {
		if err := writeProxyHeader(conn, remote, local); err != nil {
			conn.Close()
			return nil, auth.Temporary(fmt.Sprintf("backend %s: PROXY header", t.Addr()), err)
		}
		t.Forwarded = true
	}
	b := NewBackendConn(conn)
	b.warm = warm
	if t.TLS == TLSImplicit {
		if err := b.StartTLS(ctx, p.BackendTLSConfig(t)); err != nil {
			b.Close()
			return nil, ClassifyTLS(fmt.Sprintf("backend %s: TLS", t.Addr()), err)
		}
	}
	return b, nil
}

// BackendTLSConfig is the TLS configuration for t's backend: verified
// against the configured roots and the host name the passdb or director
// gave (an IP is checked against the certificate's IP addresses), unless
// any-cert.
func (p *Pipeline) BackendTLSConfig(t *Target) *tls.Config {
	var c *tls.Config
	if p.TLSConfig != nil {
		c = p.TLSConfig.Clone()
	} else {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	c.ServerName = t.Host
	c.InsecureSkipVerify = t.AnyCert
	return c
}

// ClassifyTLS classifies a failed backend TLS handshake: a certificate
// that does not verify will not verify on a retry either (internal, a
// configuration matter); anything else is the network's fault.
func ClassifyTLS(op string, err error) error {
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) {
		return auth.Internal(op, err)
	}
	return auth.Temporary(op, err)
}

// Dial connects to t's backend, retrying refused or timed-out connections,
// within t.Timeout. Failures are temporary.
func (p *Pipeline) Dial(ctx context.Context, t *Target) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	addr := t.Addr()
	dialer := net.Dialer{KeepAliveConfig: keepAlive()}
	attempts := max(p.ConnectAttempts, 1)
	if p.health.failingSince(addr, time.Now()) > immediateFailureAfter {
		attempts = 1
	}
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(retryDelay):
			}
		}
		if ctx.Err() != nil {
			break
		}
		var c net.Conn
		c, err = dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			p.health.ok(addr)
			return c, nil
		}
	}
	if err == nil {
		err = ctx.Err()
	}
	p.health.failed(addr, time.Now())
	return nil, auth.Temporary(fmt.Sprintf("backend %s: connect", addr), err)
}

// hostHealth remembers since when each backend address has been failing.
type hostHealth struct {
	mu    sync.Mutex
	since map[string]time.Time
}

func (h *hostHealth) failed(addr string, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.since == nil {
		h.since = map[string]time.Time{}
	}
	if _, ok := h.since[addr]; !ok {
		h.since[addr] = now
	}
}

func (h *hostHealth) ok(addr string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.since, addr)
}

func (h *hostHealth) failingSince(addr string, now time.Time) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.since[addr]; ok {
		return now.Sub(t)
	}
	return 0
}

// ErrBackendClosed is returned when a backend hangs up during login.
var ErrBackendClosed = errors.New("backend closed the connection")
