// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/mechs"
)

// Authenticator checks a login: passdb.Chain is one. A nil error means
// the Result's Status is a definitive answer, negative answers included.
type Authenticator interface {
	Verify(ctx context.Context, req *auth.Request) (auth.Result, error)
}

// Canonicalizer is implemented by an Authenticator that rewrites login
// names before its databases see them (passdb.Chain: the master user
// separator, auth.default_realm, auth.username_format). The gateway's log
// lines then name a user as the databases and the director do, even
// before (or without) an answer.
type Canonicalizer interface {
	CanonicalUser(req *auth.Request) string
}

// Refused is a definitive "no" to a login: the databases or the backend
// answered, negatively. Everything else that stops a login is a failure,
// classified with auth.KindOf.
type Refused struct {
	Status auth.Status
	// Reason is a text the client may see (the passdb's reason field for
	// nologin); "" means the protocol's fixed text.
	Reason string
}

func (r *Refused) Error() string {
	if r.Reason != "" {
		return r.Status.String() + ": " + r.Reason
	}
	return r.Status.String()
}

// Outcome is how a failed login is shown to the client; each protocol
// renders it in one place.
type Outcome int

const (
	OutcomeAuthFailed Outcome = iota // wrong password, unknown user
	OutcomeDisabled                  // nologin, with Reason when set
	OutcomeTempFail                  // a database, the director or the backend could not answer
	OutcomeInternal                  // our configuration or a bug
	OutcomeLimit                     // a limit (max_userip_connections), with Reason the text to show
)

// LimitError is a login refused by a limit; Text says which, in
// Dovecot's words, for the client.
type LimitError struct{ Text string }

func (e *LimitError) Error() string { return e.Text }

// Unwrap makes every LimitError an ErrLimit.
func (e *LimitError) Unwrap() error { return ErrLimit }

// OutcomeOf classifies err from Pipeline or a backend login.
func OutcomeOf(err error) (Outcome, string) {
	var r *Refused
	if errors.As(err, &r) {
		if r.Status == auth.StatusUserDisabled {
			return OutcomeDisabled, r.Reason
		}
		return OutcomeAuthFailed, ""
	}
	var lim *LimitError
	if errors.As(err, &lim) {
		return OutcomeLimit, lim.Text
	}
	if auth.KindOf(err) == auth.KindInternal {
		return OutcomeInternal, ""
	}
	return OutcomeTempFail, ""
}

// Target is where and as whom an authenticated client is logged in.
type Target struct {
	// Account is the canonical user (after the passdb chain), for the
	// session registry and limits; User is the name on the backend.
	Account  string
	User     string // user name on the backend (destuser, or the login user)
	Master   string // master user for the backend login, "" for none
	Password string // password for the backend login
	Host     string // backend host as the passdb or director named it
	DialHost string // address dialled (hostip when given, else Host)
	Port     int
	Timeout  time.Duration // connect + login budget
	Route    string        // "pinned", "sticky" or "hashed"
	// TLS is how the backend connection is protected: none, implicit
	// (ssl=yes) or STARTTLS (starttls=yes); AnyCert skips verification
	// (ssl=any-cert, starttls=any-cert).
	TLS     TLSMode
	AnyCert bool
	// NotTrusted stops forwarding the client's address (proxy_not_trusted).
	NotTrusted bool
	// Forwarded: a PROXY header already told the backend who the client
	// is, so the protocol's own forwarding (ID, XCLIENT) is skipped.
	Forwarded bool
	// Token and TokenMech: log in on the backend with this OAuth token
	// and mechanism (OAUTHBEARER, XOAUTH2) instead of a password.
	Token, TokenMech string
	Fields           auth.Fields

	lease *director.Lease
}

// Addr returns host:port to dial.
func (t *Target) Addr() string { return net.JoinHostPort(t.DialHost, strconv.Itoa(t.Port)) }

// Release gives up the director assignment hold; call it once the session
// (or the failed attempt) is over.
func (t *Target) Release() {
	if t.lease != nil {
		t.lease.Release()
	}
}

// Pipeline turns a login request into a logged-in backend connection's
// target: passdb chain, nologin, then a pinned host or the director.
type Pipeline struct {
	Passdb   Authenticator
	Director *director.Director
	// Ports are the default backend ports by service ("imap": 143;
	// "imaps": 993 is used with ssl=yes); HostPorts override them per
	// backend IP.
	Ports     map[string]int
	HostPorts map[string]map[string]int
	// TLSConfig is the base for backend TLS (roots, client certificate);
	// nil means the system's roots.
	TLSConfig *tls.Config
	// SendProxyProtocol sends a PROXY v2 header to backends.
	SendProxyProtocol bool
	// Penalty slows failed logins down (nil: no delay, no penalty).
	Penalty *Penalty
	// Mechs is the configuration part of what SASL mechanisms know
	// (Verifier, AnonymousUser, Tokens, CertUsernameField, Hostname).
	Mechs mechs.Info
	// MasterUser and MasterPassword log in on backends when the client's
	// mechanism gave no password (CRAM-MD5, SCRAM, ...) and the passdb no
	// master/pass fields.
	MasterUser, MasterPassword string
	// Sessions and MaxUserIPConnections bound one user's simultaneous
	// sessions from one address (Dovecot's mail_max_userip_connections;
	// 0: no bound).
	Sessions             *Registry
	MaxUserIPConnections int
	// Observer is told of logins, backend logins and relayed bytes
	// (metrics); nil: nobody.
	Observer        Observer
	Timeout         time.Duration // default backend connect+login budget
	ConnectAttempts int
	// Self lists the gateway's own listening addresses: a target among
	// them is a proxy loop. SelfAddrs, when set, adds the addresses a
	// running server listens on now (Server.SelfAddrs), which a reload
	// changes.
	Self      []netip.AddrPort
	SelfAddrs func() []netip.AddrPort
	Log       *slog.Logger
	// Warm holds backend connections dialled ahead (nil: none).
	Warm *WarmPool

	health hostHealth
}

// Authenticate runs the passdb chain for req and decides the backend. On
// success the caller owns the Target and must Release it.
func (p *Pipeline) Authenticate(ctx context.Context, req *auth.Request) (*Target, error) {
	res, err := p.Passdb.Verify(ctx, req)
	if err != nil {
		return nil, err
	}
	if res.Status != auth.StatusOK {
		p.LoginFailed(ctx, req, res.User, res.Status.String())
		return nil, &Refused{Status: res.Status}
	}
	if err := p.checkLimits(req, res); err != nil {
		return nil, err
	}
	return p.Route(ctx, req, res)
}

// penaltyWait makes a login from an address that keeps failing wait
// before it is tried.
func (p *Pipeline) penaltyWait(ctx context.Context, req *auth.Request) error {
	wait := p.Penalty.Wait(req.Remote.Addr())
	if wait <= 0 {
		return nil
	}
	p.Obs().Penalized()
	if p.Log != nil {
		p.Log.Info("auth penalty", "service", req.Service, "session", req.Session, "rip", req.Remote.Addr().String(), "wait", wait)
	}
	if err := sleep(ctx, wait); err != nil {
		return auth.Temporary("auth penalty", err)
	}
	return nil
}

// checkLimits applies max_userip_connections.
func (p *Pipeline) checkLimits(req *auth.Request, res auth.Result) error {
	user := res.User
	if user == "" {
		user = req.User
	}
	if p.MaxUserIPConnections > 0 && p.Sessions != nil && req.Remote.IsValid() &&
		p.Sessions.CountUserIP(user, req.Remote.Addr()) >= p.MaxUserIPConnections {
		// Dovecot's login processes' words for it (ERR_TOO_MANY_USERIP_CONNECTIONS).
		return auth.Temporary("limit", fmt.Errorf("%s has %d sessions from %s already: %w", user, p.MaxUserIPConnections, req.Remote.Addr(),
			&LimitError{Text: fmt.Sprintf("Maximum number of connections from user+IP exceeded (mail_max_userip_connections=%d)", p.MaxUserIPConnections)}))
	}
	return nil
}

// LoginFailed records a refused login — by the passdb chain, or by the
// backend: one log line in a fixed shape for fail2ban
// (msg="authentication failed" ... rip=ADDR), a penalty point for the
// address, and the failure delay before the client hears the answer.
// user is the canonical name when the caller has it ("": UserName(req)).
func (p *Pipeline) LoginFailed(ctx context.Context, req *auth.Request, user, reason string) {
	rip := ""
	if req.Remote.IsValid() {
		rip = req.Remote.Addr().String()
	}
	if user == "" {
		user = p.UserName(req)
	}
	if p.Log != nil {
		p.Log.Info("authentication failed", "service", req.Service, "session", req.Session, "user", user,
			"rip", rip, "reason", reason)
	}
	if p.Penalty == nil {
		return
	}
	p.Penalty.Failed(req.Remote.Addr())
	loginIdle(ctx)
	sleep(ctx, p.Penalty.Delay)
}

// UserName returns the name log lines give the user of req: the name the
// Authenticator turns the client's into (one name per user: the
// director's key, the session's account), or req.User as given when it
// rewrites nothing.
func (p *Pipeline) UserName(req *auth.Request) string {
	if c, ok := p.Passdb.(Canonicalizer); ok {
		return c.CanonicalUser(req)
	}
	return req.User
}

// Route decides where and as whom a user found by the passdb (or userdb)
// is served: Dovecot's proxy fields (nologin, destuser, master, pass,
// host, hostip, port, ssl, starttls, proxy_timeout, proxy_not_trusted,
// director_tag), else the director. LMTP calls it per recipient, without
// a login. On success the caller owns the Target and must Release it.
func (p *Pipeline) Route(ctx context.Context, req *auth.Request, res auth.Result) (*Target, error) {
	f := res.Fields
	if f == nil {
		f = auth.Fields{}
	}
	if f.Has("nologin") {
		// Referrals (nologin with host) are not offered: clients rarely
		// follow them, and a proxy's job is to take the user there.
		return nil, &Refused{Status: auth.StatusUserDisabled, Reason: f.Get("reason")}
	}
	user := req.User
	if res.User != "" {
		user = res.User
	}
	t := &Target{Account: user, User: user, Password: req.Password, Fields: f, NotTrusted: f.Has("proxy_not_trusted")}
	if res.Master != "" {
		// A master user logged in for user ("user*master", or a SASL
		// authorization identity): log in on the backend the same way,
		// with the password the client gave.
		t.Master = res.Master
	}
	if v := f.Get("destuser"); v != "" {
		t.User = v
	}
	if v := f.Get("master"); v != "" {
		t.Master = v
	}
	if v, ok := f["pass"]; ok {
		t.Password = v
	}
	var err error
	if t.TLS, t.AnyCert, err = backendTLS(f); err != nil {
		return nil, err
	}
	if t.Timeout, err = p.timeout(f.Get("proxy_timeout")); err != nil {
		return nil, err
	}
	if host := f.Get("host"); host != "" {
		// Dovecot: a passdb that names the host bypasses the director.
		t.Host, t.Route = host, "pinned"
	} else {
		lease, err := p.Director.Acquire(ctx, t.User, f.Get("director_tag"))
		if err != nil {
			return nil, err
		}
		t.Host, t.Route, t.lease = lease.Backend, string(lease.Reason), lease
	}
	t.DialHost = t.Host
	if v := f.Get("hostip"); v != "" {
		t.DialHost = v
	}
	if t.Port, err = p.port(req.Service, t.DialHost, t.TLS == TLSImplicit, f.Get("port")); err != nil {
		t.Release()
		return nil, err
	}
	if p.isSelf(t.DialHost, t.Port) {
		t.Release()
		return nil, auth.Internal("proxy", fmt.Errorf("proxying loops to itself: %s", t.Addr()))
	}
	return t, nil
}

// port picks the backend port: the passdb's port field, else the
// backend's own override, else the default, for the TLS variant of the
// service when ssl=yes and one exists (imaps, pop3s).
func (p *Pipeline) port(service, host string, implicitTLS bool, field string) (int, error) {
	if field == "" {
		names := []string{service}
		if implicitTLS {
			names = []string{service + "s", service}
		}
		for _, ports := range []map[string]int{p.HostPorts[host], p.Ports} {
			for _, name := range names {
				if n := ports[name]; n > 0 {
					return n, nil
				}
			}
		}
		return 0, auth.Internal("proxy", fmt.Errorf("no backend port for %s", service))
	}
	n, err := strconv.Atoi(field)
	if err != nil || n < 1 || n > 65535 {
		return 0, auth.Internal("proxy", fmt.Errorf("passdb field port=%q is not a port", field))
	}
	return n, nil
}

// backendTLS reads the ssl and starttls fields: yes, any-cert, or off.
func backendTLS(f auth.Fields) (TLSMode, bool, error) {
	mode, anyCert := TLSNone, false
	for _, k := range []string{"ssl", "starttls"} {
		v, ok := f[k]
		if !ok {
			continue
		}
		switch strings.ToLower(v) {
		case "no", "n", "false", "0":
			continue
		case "yes", "y", "", "1", "true":
		case "any-cert":
			anyCert = true
		default:
			return 0, false, auth.Internal("proxy", fmt.Errorf("passdb field %s=%q: want yes or any-cert", k, v))
		}
		if k == "ssl" {
			mode = TLSImplicit
		} else if mode == TLSNone {
			mode = TLSStartTLS
		}
	}
	return mode, anyCert, nil
}

// timeout reads a proxy_timeout field: seconds, or a Go duration.
func (p *Pipeline) timeout(field string) (time.Duration, error) {
	if field == "" {
		return p.Timeout, nil
	}
	if n, err := strconv.Atoi(field); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	if d, err := time.ParseDuration(field); err == nil && d > 0 {
		return d, nil
	}
	return 0, auth.Internal("proxy", fmt.Errorf("passdb field proxy_timeout=%q is not a duration", field))
}

func (p *Pipeline) isSelf(host string, port int) bool {
	a, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	a = a.Unmap()
	if selfIn(p.Self, a, port) {
		return true
	}
	// Two looks, not a joined slice: this runs on every login.
	return p.SelfAddrs != nil && selfIn(p.SelfAddrs(), a, port)
}

// selfIn reports whether a:port is among addrs (an unspecified address
// stands for every local one).
func selfIn(addrs []netip.AddrPort, a netip.Addr, port int) bool {
	for _, s := range addrs {
		if s.Port() != uint16(port) {
			continue
		}
		if s.Addr() == a || (s.Addr().IsUnspecified() && (a.IsLoopback() || isLocalAddr(a))) {
			return true
		}
	}
	return false
}

// isLocalAddr reports whether a is configured on this machine.
func isLocalAddr(a netip.Addr) bool {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if x, ok := netip.AddrFromSlice(n.IP); ok && x.Unmap() == a {
				return true
			}
		}
	}
	return false
}
