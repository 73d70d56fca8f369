// SPDX-License-Identifier: Apache-2.0

package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/gateway"
	"github.com/maildirector/maildirector/gateway/imap"
	"github.com/maildirector/maildirector/internal/authbuild"
	"github.com/maildirector/maildirector/mechs"
)

// app is everything serve runs, built from a config without I/O beyond
// reading certificate files.
type app struct {
	server   *gateway.Server
	director *director.Director
	pipeline *gateway.Pipeline
	auth     *authbuild.DBs
}

func newLogger(c config.Log, w *os.File) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// build turns cfg into the running parts, reporting every problem.
func build(cfg *config.Config, log *slog.Logger) (*app, error) {
	var errs []error
	adb, err := authbuild.Build(cfg, log)
	if err != nil {
		errs = append(errs, err)
	}
	hosts, err := director.ParseHosts(cfg.Director.Backends)
	if err != nil {
		errs = append(errs, fmt.Errorf("director.backends: %w", err))
	}
	dir, err := director.New(director.Config{
		Hosts:        hosts,
		UserExpire:   cfg.Director.UserExpire,
		UsernameHash: cfg.Director.UsernameHash,
		Store:        memory.New(),
		Logger:       log,
	})
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
	}
	if len(errs) > 0 {
		if adb != nil {
			adb.Close()
		}
		return nil, errors.Join(errs...)
	}
	pipeline := &gateway.Pipeline{
		Passdb:          adb.Passdb,
		Director:        dir,
		Ports:           map[string]int{"imap": cfg.Backend.Ports.IMAP},
		Timeout:         cfg.Backend.Timeout,
		ConnectAttempts: cfg.Backend.ConnectAttempts,
		Log:             log,
	}
	registry := &gateway.Registry{}
	imapServer := &imap.Server{
		Pipeline:        pipeline,
		Registry:        registry,
		Mechs:           []mechs.Mechanism{mechs.Plain, mechs.Login},
		MaxAuthFailures: cfg.Limits.MaxAuthFailures,
		MaxBadCommands:  cfg.Limits.MaxBadCommands,
	}
	srv := &gateway.Server{
		Limits: gateway.Limits{LoginTimeout: cfg.Limits.LoginTimeout, MaxLine: cfg.Limits.MaxLineLength},
		Log:    log,
	}
	for _, l := range cfg.Listen {
		gl := &gateway.Listener{
			Protocol:       "imap",
			Address:        l.Address,
			TLSConfig:      tlsConfig,
			Trusted:        cfg.Trusted(),
			AllowPlaintext: cfg.AllowPlaintext,
			Handler:        imapServer,
		}
		switch l.TLS {
		case "implicit":
			gl.TLSMode = gateway.TLSImplicit
		case "starttls":
			gl.TLSMode = gateway.TLSStartTLS
		}
		srv.Listeners = append(srv.Listeners, gl)
	}
	return &app{server: srv, director: dir, pipeline: pipeline, auth: adb}, nil
}
