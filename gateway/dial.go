// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
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

// Dial connects to t's backend, retrying refused or timed-out connections,
// within t.Timeout. Failures are temporary.
func (p *Pipeline) Dial(ctx context.Context, t *Target) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	addr := t.Addr()
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
		c, err = p.dialer.DialContext(ctx, "tcp", addr)
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
