// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"syscall"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/mechs"
)

// BackendLogin is a protocol's login on a connected backend, as t says
// (user, password or master, token); it returns the line that tells the
// client it is logged in (the backend's own OK, retagged as needed).
type BackendLogin func(ctx context.Context, b *BackendConn, t *Target) (okLine string, err error)

// Request returns the auth.Request for a login by this client.
func (c *ClientConn) Request(service, mech string, o mechs.Outcome) *auth.Request {
	return &auth.Request{
		Service:  service,
		Mech:     mech,
		User:     o.User,
		AuthzID:  o.AuthzID,
		Password: o.Password,
		Remote:   c.Remote,
		Local:    c.Local,
		Secured:  c.Secured(),
		TLS:      c.TLS,
		Session:  c.Session,
	}
}

// LogUser returns the name a login's log lines give its user: the
// passdb's canonical name when a mechanism already asked it, else the
// name the passdb chain will make of the client's (Pipeline.UserName).
func (p *Pipeline) LogUser(c *ClientConn, service, mech string, o mechs.Outcome) string {
	if o.Auth.User != "" {
		return o.Auth.User
	}
	return p.UserName(c.Request(service, mech, o))
}

// MechInfo is what a SASL mechanism may know of this connection.
func (p *Pipeline) MechInfo(ctx context.Context, c *ClientConn, service string) mechs.Info {
	info := p.Mechs
	info.Ctx, info.Service = ctx, service
	if tc, ok := c.Conn().(*tls.Conn); ok {
		st := tc.ConnectionState()
		info.TLS = &st
		info.ServerCert = presentedCert(c.Listener.TLSConfig, st.ServerName)
	}
	info.Request = func(user, authzid string) *auth.Request {
		return c.Request(service, "", mechs.Outcome{User: user, AuthzID: authzid})
	}
	return info
}

// Login is the part of every front end's login that is not protocol:
// authenticate the client (through the passdb chain with its password,
// or take what a SASL mechanism already checked), pick and connect its
// backend, and log in there with login. A refusal, by the passdb or the
// backend, is recorded (fail2ban line, penalty, failure delay). On
// success the caller sends okLine, relays b and then releases t.
func (p *Pipeline) Login(ctx context.Context, c *ClientConn, service, mech string, o mechs.Outcome, login BackendLogin) (t *Target, b *BackendConn, okLine string, err error) {
	// Everything a login waits for (a penalty, a slot to check a password,
	// the databases, the backend) ends with the client's login time: a
	// client past it is gone, and must not hold a place in any queue.
	if !c.deadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, c.deadline)
		defer cancel()
	}
	req := c.Request(service, mech, o)
	if !o.Checked && o.Token == "" {
		// An address that keeps failing waits before it may try again
		// (a wait, not work: the connection stays evictable meanwhile).
		if err := p.penaltyWait(ctx, req); err != nil {
			return nil, nil, "", err
		}
	}
	// From here the login is being worked on: the pre-login bounds do
	// not take this connection to make room.
	ctx, done := c.loginStart(ctx)
	defer done()
	if c.TTL <= 1 {
		return nil, nil, "", auth.Internal("proxy", errors.New("proxying loops: TTL reached zero"))
	}
	if o.Checked || o.Token != "" {
		t, err = p.Authorized(ctx, req, o.Auth)
	} else {
		t, err = p.Authenticate(ctx, req)
	}
	if err != nil {
		return nil, nil, "", err
	}
	t.Token, t.TokenMech = o.Token, o.TokenMech
	if o.Checked && o.Token == "" {
		// The mechanism never told us the password.
		if err := p.backendCredentials(t, mech); err != nil {
			t.Release()
			return nil, nil, "", err
		}
	}
	// One budget covers connecting (with retries) and logging in, so that
	// a backend that accepts connections but never answers is as bounded
	// as one that refuses them.
	dialed := time.Now()
	deadline := dialed.Add(t.Timeout)
	loginCtx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	b, err = p.Connect(loginCtx, t, c.Remote, c.Local)
	if err != nil {
		p.Obs().BackendLogin(t.Host, false, time.Since(dialed))
		t.Release()
		return nil, nil, "", err
	}
	b.Conn().SetDeadline(deadline)
	okLine, err = login(loginCtx, b, t)
	var refused *Refused
	if err != nil && b.warm && retryFresh(err) && loginCtx.Err() == nil {
		// A warm connection the backend dropped, or whose login process
		// could no longer log anybody in (a backend reloaded while it
		// waited loses its old login processes' auth connections: an
		// internal failure): once more on a new connection, as if the
		// first had never been. The client has heard nothing yet.
		b.Close()
		if b, err = p.connect(loginCtx, t, c.Remote, c.Local, true); err != nil {
			p.Obs().BackendLogin(t.Host, false, time.Since(dialed))
			t.Release()
			return nil, nil, "", err
		}
		b.Conn().SetDeadline(deadline)
		okLine, err = login(loginCtx, b, t)
	}
	p.Obs().BackendLogin(t.Host, err == nil, time.Since(dialed))
	if err != nil {
		b.Close()
		t.Release()
		if errors.As(err, &refused) {
			p.LoginFailed(ctx, req, t.Account, "backend refused the login")
		}
		return nil, nil, "", err
	}
	return t, b, okLine, nil
}

// ErrInUse marks a backend's refusal because the mailbox is in use (a
// POP3 session lock): temporary, but the user's state, not the
// connection's.
var ErrInUse = errors.New("mailbox in use")

// retryFresh reports whether a backend login that failed on a warm
// connection is worth one more try on a new one: the connection was gone
// (closed, reset) or the backend failed internally — not a refusal of the
// user, a limit or a locked mailbox, which a new connection would only
// meet again.
func retryFresh(err error) bool {
	if errors.Is(err, ErrBackendClosed) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var refused *Refused
	return !errors.As(err, &refused) && auth.KindOf(err) == auth.KindTemporary &&
		!errors.Is(err, ErrLimit) && !errors.Is(err, ErrInUse)
}

// Authorized continues a login a SASL mechanism has checked (or an OAuth
// token the backend will check): res is the passdb's answer about the
// user.
func (p *Pipeline) Authorized(ctx context.Context, req *auth.Request, res auth.Result) (*Target, error) {
	if res.Status != auth.StatusOK {
		p.LoginFailed(ctx, req, res.User, res.Status.String())
		return nil, &Refused{Status: res.Status}
	}
	if err := p.checkLimits(req, res); err != nil {
		return nil, err
	}
	return p.Route(ctx, req, res)
}

// backendCredentials makes sure a login whose mechanism gave no password
// has something to log in on the backend with: the passdb's master/pass
// fields, or else the configured master user.
func (p *Pipeline) backendCredentials(t *Target, mech string) error {
	if _, pass := t.Fields["pass"]; t.Master != "" || pass {
		return nil
	}
	if p.MasterUser != "" {
		t.Master, t.Password = p.MasterUser, p.MasterPassword
		return nil
	}
	return auth.Internal("proxy", fmt.Errorf("%s gives no plaintext password and neither the passdb (master=, pass=) nor backend.master_user gives a backend login", mech))
}

// Proxy finishes a login the backend accepted: it registers the session,
// tells the client (sendOK) and relays until either side closes, logging
// the login and its end, and records the login's verdict with p. It
// returns once the session is over, or, where the server lets a session
// outlive its handler (ClientConn.handOff), once the relay has started:
// then nothing of the login (its goroutine's grown stack, the ClientConn,
// t) stays while the session is idle. Either way Proxy takes t's
// director lease and releases it when the session ends.
func (p *Pipeline) Proxy(c *ClientConn, t *Target, b *BackendConn, reg *Registry, service, method string, started time.Time, sendOK func() error) {
	// The session's relay exists before the session is registered: a kick
	// (Registry.Kick, the lease's) ends it through the relay, never by
	// closing a socket the relay's poller may be watching.
	sess := &Session{ID: c.Session, Service: service, User: t.Account, Backend: t.Addr(), Remote: c.Remote, Started: time.Now(),
		relay: newRelay(c.conn, b.conn)}
	reg.Add(sess)
	if t.lease != nil {
		// A move or a fenced gateway ends the session from the director.
		t.lease.OnKick(sess.relay.close)
	}
	c.leavePrelogin()
	if err := sendOK(); err != nil {
		b.Close()
		reg.Remove(sess)
		p.LoginVerdict(c, service, t.Account, sess.Backend, started, ErrAborted)
		return
	}
	p.LoginVerdict(c, service, t.Account, sess.Backend, started, nil, slog.String("method", method), slog.String("route", t.Route))
	// Only a whole login resets the penalty, not a passdb's yes: with
	// nopassword the backend checks the password, and an attacker's
	// every try would pass the passdb.
	p.Penalty.Succeeded(c.Remote.Addr())
	// The end keeps only what it logs: not c, not t.
	log, route, lease := c.logLater(), t.Route, t.lease
	t.lease = nil
	done, handedOff := c.handOff()
	end := func(in, out int64) {
		p.Obs().Relayed(service, in, out)
		log().Info("proxy: disconnected", "user", sess.User, "backend", sess.Backend, "route", route,
			"bytes_in", in, "bytes_out", out, "duration", time.Since(sess.Started).Round(time.Second))
		if lease != nil {
			lease.Release()
		}
		if done != nil {
			done()
		}
	}
	if handedOff {
		StartRelay(c, b, sess, reg, end)
		return
	}
	end(Relay(c, b, sess, reg))
}

// presentedCert returns the leaf certificate (DER) the gateway presented
// to a client that asked for name (SNI), for tls-server-end-point
// channel binding: Go picks the first certificate that fits the client's
// hello, or the first one; with the hello gone, the first whose names
// match stands for it (exact for the usual single certificate and for
// SNI certificates of distinct names).
func presentedCert(cfg *tls.Config, name string) []byte {
	if cfg == nil || len(cfg.Certificates) == 0 {
		return nil
	}
	if name != "" && len(cfg.Certificates) > 1 {
		for i := range cfg.Certificates {
			c := &cfg.Certificates[i]
			leaf := c.Leaf
			if leaf == nil && len(c.Certificate) > 0 {
				leaf, _ = x509.ParseCertificate(c.Certificate[0])
			}
			if leaf != nil && leaf.VerifyHostname(name) == nil {
				return c.Certificate[0]
			}
		}
	}
	if len(cfg.Certificates[0].Certificate) == 0 {
		return nil
	}
	return cfg.Certificates[0].Certificate[0]
}
