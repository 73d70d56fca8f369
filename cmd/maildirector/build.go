// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/gateway/doveadm"
	"github.com/maildirector/maildirector/gateway/imap"
	"github.com/maildirector/maildirector/gateway/lmtp"
	"github.com/maildirector/maildirector/gateway/pop3"
	"github.com/maildirector/maildirector/gateway/sieve"
	"github.com/maildirector/maildirector/internal/authbuild"
	"github.com/maildirector/maildirector/mechs"
	"github.com/maildirector/maildirector/metrics"
	"github.com/maildirector/maildirector/oauth"
)

// app is everything serve runs, built from a config without I/O beyond
// reading certificate and .conf.ext files.
type app struct {
	server   *gateway.Server
	director *director.Director
	registry *gateway.Registry
	admin    *adminDoors
	metrics  *metrics.Metrics
	warm     *gateway.WarmPool
	name     string // this gateway's name in the cluster

	mu    sync.Mutex
	front *front // the part a reload replaces
}

// front is what a reload rebuilds from the new configuration: the
// databases, the login pipeline, the protocol handlers and the listeners
// with their certificates. The director, the session registry and the
// metrics are shared by every generation: sessions outlive a reload.
type front struct {
	pipeline  *gateway.Pipeline
	auth      *authbuild.DBs
	listeners []*gateway.Listener
	limits    gateway.Limits
}

// shared is what every front generation is built around.
type shared struct {
	director *director.Director
	registry *gateway.Registry
	metrics  *metrics.Metrics // nil: none (config check, tools)
	// penalty is the previous generation's, kept when its settings did
	// not change: a reload must not forgive an address mid-attack.
	penalty *gateway.Penalty
	// self returns the addresses the gateway listens on now (proxy loops).
	self func() []netip.AddrPort
	// warm holds backend connections dialled ahead; every generation
	// takes from it.
	warm *gateway.WarmPool
}

func newLogger(c config.Log, w *os.File) *slog.Logger {
	return newLoggerLevel(c, w, nil)
}

// newLoggerLevel is newLogger with its level held in lv (when not nil),
// so that a reload can change it.
func newLoggerLevel(c config.Log, w *os.File, lv *slog.LevelVar) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if lv != nil {
		lv.Set(level)
		opts.Level = lv
	}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// build turns cfg into the running parts, reporting every problem. The
// director keeps its state in store. m may be nil (no metrics).
func build(cfg *config.Config, log *slog.Logger, store director.Store, m *metrics.Metrics) (*app, error) {
	var errs []error
	hosts, err := director.ParseHosts(cfg.Director.Backends)
	if err != nil {
		errs = append(errs, fmt.Errorf("director.backends: %w", err))
	}
	dir, err := director.New(director.Config{
		Hosts:        hosts,
		UserExpire:   cfg.Director.UserExpire,
		UsernameHash: cfg.Director.UsernameHash,
		Store:        store,
		Logger:       log,
	})
	if err != nil {
		errs = append(errs, err)
	}
	registry := &gateway.Registry{}
	srv := &gateway.Server{Log: log}
	warm := gateway.NewWarmPool(*cfg.Backend.WarmConnections)
	var f *front
	if dir != nil {
		f, err = buildFront(cfg, log, shared{director: dir, registry: registry, metrics: m, self: srv.SelfAddrs, warm: warm})
		if err != nil {
			errs = append(errs, err)
		}
	}
	doors, err := buildAdmin(cfg, dir, log)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		if f != nil {
			f.auth.Close()
		}
		return nil, errors.Join(errs...)
	}
	srv.Listeners, srv.Limits = f.listeners, f.limits
	name := cfg.Director.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	return &app{server: srv, director: dir, registry: registry, admin: doors, metrics: m, warm: warm, front: f, name: name}, nil
}

// current returns the front generation in use.
func (a *app) current() *front {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.front
}

// buildFront builds one generation of the front around sh.
func buildFront(cfg *config.Config, log *slog.Logger, sh shared) (*front, error) {
	var errs []error
	adb, err := authbuild.Build(cfg, log)
	if err != nil {
		errs = append(errs, err)
	}
	var tlsConfig *tls.Config
	if cfg.TLS.Cert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.Cert, cfg.TLS.Key)
		if err != nil {
			errs = append(errs, fmt.Errorf("tls: %w", err))
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		// Go picks, per handshake, the certificate whose names match the
		// client's SNI, and the first one when none does.
		for i, ck := range cfg.TLS.SNI {
			c, err := tls.LoadX509KeyPair(ck.Cert, ck.Key)
			if err != nil {
				errs = append(errs, fmt.Errorf("tls.sni[%d]: %w", i, err))
				continue
			}
			tlsConfig.Certificates = append(tlsConfig.Certificates, c)
		}
	}
	backendTLS, err := backendTLSConfig(cfg.Backend)
	if err != nil {
		errs = append(errs, err)
	}
	mechList, err := buildMechanisms(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	if tlsConfig != nil && cfg.TLS.ClientCAFile != "" {
		pem, err := os.ReadFile(cfg.TLS.ClientCAFile)
		roots := x509.NewCertPool()
		if err != nil || !roots.AppendCertsFromPEM(pem) {
			errs = append(errs, fmt.Errorf("tls.client_ca_file: no certificate read from %s: %v", cfg.TLS.ClientCAFile, err))
		}
		// Ask for a certificate, never insist: only EXTERNAL uses it.
		tlsConfig.ClientCAs, tlsConfig.ClientAuth = roots, tls.VerifyClientCertIfGiven
	}
	var tokens mechs.TokenValidator
	if o := cfg.Auth.OAuth2; o.IntrospectionURL != "" {
		tokens = &oauth.Introspector{URL: o.IntrospectionURL, ClientID: o.ClientID, ClientSecret: o.ClientSecret, UsernameAttribute: o.UsernameAttribute}
	}
	hostname, _ := os.Hostname()
	if len(errs) > 0 {
		if adb != nil {
			adb.Close()
		}
		return nil, errors.Join(errs...)
	}
	var obs gateway.Observer
	if sh.metrics != nil {
		obs = sh.metrics
		adb.Passdb.Observe = sh.metrics.Passdb()
		if adb.Userdb != nil {
			adb.Userdb.Observe = sh.metrics.Userdb()
		}
	}
	penalty := &gateway.Penalty{
		Delay:  *cfg.Limits.AuthFailureDelay,
		Max:    *cfg.Limits.AuthPenaltyMax,
		Exempt: cfg.Trusted(),
	}
	if old := sh.penalty; old != nil && old.Delay == penalty.Delay && old.Max == penalty.Max && slices.Equal(old.Exempt, penalty.Exempt) {
		penalty = old
	}
	pipeline := &gateway.Pipeline{
		Passdb:               adb.Passdb,
		Director:             sh.director,
		Ports:                cfg.Backend.Ports.Map(),
		HostPorts:            map[string]map[string]int{},
		TLSConfig:            backendTLS,
		SendProxyProtocol:    cfg.Backend.SendProxyProtocol,
		Timeout:              cfg.Backend.Timeout,
		ConnectAttempts:      cfg.Backend.ConnectAttempts,
		Log:                  log,
		Penalty:              penalty,
		Sessions:             sh.registry,
		Observer:             obs,
		SelfAddrs:            sh.self,
		MaxUserIPConnections: *cfg.Limits.MaxUserIPConnections,
		MasterUser:           cfg.Backend.MasterUser,
		MasterPassword:       cfg.Backend.MasterPassword,
		Warm:                 sh.warm,
		Mechs: mechs.Info{
			Verifier:          adb.Passdb,
			Hostname:          hostname,
			AnonymousUser:     cfg.Auth.AnonymousUsername,
			Realm:             cfg.Auth.Realm,
			Tokens:            tokens,
			CertUsernameField: cfg.TLS.CertUsernameField,
		},
	}
	for ip, h := range cfg.Backend.Hosts {
		pipeline.HostPorts[ip] = h.Ports.Map()
	}
	// doveadm commands go to the backends' doveadm port (a passdb port
	// field still wins, as in Dovecot's doveadm proxy).
	pipeline.Ports["doveadm"] = cfg.Doveadm.Port
	registry := sh.registry
	handlers := map[string]gateway.Handler{
		"sieve": &sieve.Server{
			Pipeline:        pipeline,
			Registry:        registry,
			Extensions:      cfg.Sieve.Extensions,
			Notify:          cfg.Sieve.Notify,
			Mechs:           mechList,
			MaxAuthFailures: cfg.Limits.MaxAuthFailures,
			MaxBadCommands:  cfg.Limits.MaxBadCommands,
		},
		"pop3": &pop3.Server{
			Pipeline:        pipeline,
			Registry:        registry,
			Mechs:           mechList,
			MaxAuthFailures: cfg.Limits.MaxAuthFailures,
			MaxBadCommands:  cfg.Limits.MaxBadCommands,
		},
		"imap": &imap.Server{
			Pipeline:        pipeline,
			Registry:        registry,
			Mechs:           mechList,
			MaxAuthFailures: cfg.Limits.MaxAuthFailures,
			MaxBadCommands:  cfg.Limits.MaxBadCommands,
		},
	}
	var lookup lmtp.Lookuper = adb.Passdb
	if cfg.LMTP.Lookup == "userdb" {
		lookup = adb.Userdb
	}
	handlers["lmtp"] = &lmtp.Server{
		Pipeline:           pipeline,
		Lookup:             lookup,
		Hostname:           cfg.LMTP.Hostname,
		RecipientDelimiter: *cfg.LMTP.RecipientDelimiter,
		MaxRecipients:      cfg.LMTP.MaxRecipients,
		MaxMessageSize:     int64(cfg.LMTP.MaxMessageSize),
		Timeout:            cfg.LMTP.Timeout,
		MaxBadCommands:     cfg.Limits.MaxBadCommands,
	}
	handlers["doveadm"] = &doveadm.Server{
		Pipeline: pipeline,
		Lookup:   adb.Passdb,
		Password: cfg.Doveadm.Password,
	}
	f := &front{
		pipeline: pipeline,
		auth:     adb,
		limits: gateway.Limits{
			LoginTimeout:     cfg.Limits.LoginTimeout,
			MaxLine:          cfg.Limits.MaxLineLength,
			MaxPrelogin:      maxPrelogin(cfg.Limits.MaxPreloginConnections),
			MaxPreloginPerIP: *cfg.Limits.MaxPreloginPerIP,
			PreloginExempt:   cfg.Trusted(),
		},
	}
	for i, l := range cfg.Listen {
		h, ok := handlers[l.Service()]
		if !ok {
			errs = append(errs, fmt.Errorf("listen[%d]: %s is not available in this build", i, l.Protocol))
			continue
		}
		gl := &gateway.Listener{
			Protocol:       l.Service(),
			Address:        l.Address,
			Mode:           os.FileMode(l.SocketMode()),
			TLSConfig:      tlsConfig,
			Trusted:        cfg.Trusted(),
			AllowPlaintext: cfg.AllowPlaintext,
			Allow:          l.Allow(),
			HAProxy:        l.HAProxy,
			HAProxyTrusted: cfg.HAProxyTrusted(),
			HAProxyTimeout: cfg.HAProxyTimeout,
			Handler:        h,
		}
		switch l.TLS {
		case "implicit":
			gl.TLSMode = gateway.TLSImplicit
		case "starttls":
			gl.TLSMode = gateway.TLSStartTLS
		}
		f.listeners = append(f.listeners, gl)
	}
	if len(errs) > 0 {
		adb.Close()
		return nil, errors.Join(errs...)
	}
	return f, nil
}

// backendTLSConfig builds the base TLS configuration for backends: the
// configured CA bundle (else the system's roots) and a client certificate.
func backendTLSConfig(b config.Backend) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.TLSCAFile != "" {
		pem, err := os.ReadFile(b.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("backend.tls_ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("backend.tls_ca_file: no certificate in %s", b.TLSCAFile)
		}
		c.RootCAs = roots
	}
	if b.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(b.TLSCert, b.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("backend.tls_cert: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// maxPrelogin is limits.max_prelogin_connections, or by default a quarter
// of the open-files limit: pre-login connections hold one descriptor
// each, relayed sessions two, and the rest must stay free for them, the
// backends and the store.
func maxPrelogin(n int) int {
	if n > 0 {
		return n
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 {
		return 1000
	}
	return max(100, int(min(rl.Cur, 1<<30)/4))
}
