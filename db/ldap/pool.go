// SPDX-License-Identifier: Apache-2.0

package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// Timeouts for talking to the directory. A lookup never waits longer than
// its context either (the login's budget).
const (
	dialTimeout    = 5 * time.Second
	requestTimeout = 10 * time.Second
)

// pool hands out connections to the first LDAP server that answers, in
// configured order (Dovecot leaves failover to libldap, which does the
// same), and reconnects when a connection breaks. bind selects whether
// connections are bound as dn/dnpass (searches) or left for user binds.
type pool struct {
	uris      []string
	tlsConfig *tls.Config
	startTLS  bool
	dn, pass  string
	service   bool // bind as dn/dnpass after connecting

	idle chan *goldap.Conn
	sem  chan struct{} // bounds open connections
	mu   sync.Mutex
	next int // index of the URI that worked last
}

func newPool(s *Settings, service bool, size int) (*pool, error) {
	tc, err := tlsConfig(s)
	if err != nil {
		return nil, err
	}
	return &pool{
		uris: s.URIs, tlsConfig: tc, startTLS: s.StartTLS,
		dn: s.DN, pass: s.DNPass, service: service,
		idle: make(chan *goldap.Conn, size), sem: make(chan struct{}, size),
	}, nil
}

// tlsConfig builds the client TLS configuration from the tls_* keys.
func tlsConfig(s *Settings) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch s.TLSRequireCert {
	case "never", "allow", "try":
		tc.InsecureSkipVerify = true
	}
	if s.TLSCACertFile != "" || s.TLSCACertDir != "" {
		roots := x509.NewCertPool()
		files := []string{}
		if s.TLSCACertFile != "" {
			files = append(files, s.TLSCACertFile)
		}
		if s.TLSCACertDir != "" {
			m, _ := filepath.Glob(filepath.Join(s.TLSCACertDir, "*"))
			files = append(files, m...)
		}
		for _, f := range files {
			pem, err := os.ReadFile(f)
			if err != nil {
				return nil, fmt.Errorf("tls_ca_cert: %w", err)
			}
			roots.AppendCertsFromPEM(pem)
		}
		tc.RootCAs = roots
	}
	if s.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls_cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// get returns a ready connection; the caller gives it back with put.
func (p *pool) get(ctx context.Context) (*goldap.Conn, error) {
	select {
	case c := <-p.idle:
		if !c.IsClosing() {
			return c, nil
		}
		<-p.sem
	default:
	}
	select {
	case p.sem <- struct{}{}:
	case c := <-p.idle:
		if !c.IsClosing() {
			return c, nil
		}
		// a broken idle connection frees its slot for a new one
		return p.dialSlot(ctx)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	c, err := p.dial(ctx)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return c, nil
}

func (p *pool) dialSlot(ctx context.Context) (*goldap.Conn, error) {
	c, err := p.dial(ctx)
	if err != nil {
		<-p.sem
		return nil, err
	}
	return c, nil
}

// put returns c to the pool; broken connections are closed and forgotten.
func (p *pool) put(c *goldap.Conn, broken bool) {
	if broken || c.IsClosing() {
		c.Close()
		<-p.sem
		return
	}
	select {
	case p.idle <- c:
	default:
		c.Close()
		<-p.sem
	}
}

// dial connects to the servers in order, starting with the one that
// worked last, and binds as the service DN when asked to.
func (p *pool) dial(ctx context.Context) (*goldap.Conn, error) {
	p.mu.Lock()
	start := p.next
	p.mu.Unlock()
	var errs []error
	for i := 0; i < len(p.uris); i++ {
		idx := (start + i) % len(p.uris)
		c, err := p.dialOne(ctx, p.uris[idx])
		if err == nil {
			p.mu.Lock()
			p.next = idx
			p.mu.Unlock()
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (p *pool) dialOne(ctx context.Context, uri string) (*goldap.Conn, error) {
	timeout := dialTimeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = max(time.Until(dl), time.Millisecond)
	}
	c, err := goldap.DialURL(uri,
		goldap.DialWithDialer(&net.Dialer{Timeout: timeout}),
		goldap.DialWithTLSConfig(p.tlsConfig))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", uri, err)
	}
	c.SetTimeout(requestTimeout)
	if p.startTLS {
		if err := c.StartTLS(p.tlsConfig); err != nil {
			c.Close()
			return nil, fmt.Errorf("%s: StartTLS: %w", uri, err)
		}
	}
	if p.service && p.dn != "" {
		if err := c.Bind(p.dn, p.pass); err != nil {
			c.Close()
			return nil, &serviceBindError{fmt.Errorf("%s: bind as %s: %w", uri, p.dn, err)}
		}
	}
	return c, nil
}

// close closes the idle connections.
func (p *pool) close() {
	for {
		select {
		case c := <-p.idle:
			c.Close()
			<-p.sem
		default:
			return
		}
	}
}

// serviceBindError marks a failed bind as dn/dnpass: if the server
// rejected the credentials, that is our configuration, not the user.
type serviceBindError struct{ err error }

func (e *serviceBindError) Error() string { return e.err.Error() }
func (e *serviceBindError) Unwrap() error { return e.err }
