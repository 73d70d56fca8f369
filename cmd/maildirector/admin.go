// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"

	"github.com/maildirector/maildirector/admin"
	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/passdb"
)

// adminDoors are the admin socket and the admin listener serve runs (each
// nil when not configured).
type adminDoors struct {
	socket *admin.Socket
	http   *admin.HTTPServer
	// mux holds the admin listener's routes, all behind the tokens: the
	// API, and whatever else that listener serves (metrics, status page).
	mux *http.ServeMux
}

// buildAdmin prepares the admin doors of cfg over dir: it reads the token
// file and the TLS certificate, and binds nothing.
func buildAdmin(cfg *config.Config, dir *director.Director, log *slog.Logger) (*adminDoors, error) {
	a := cfg.Admin
	doors := &adminDoors{}
	if a.Socket == "" && a.Listen == "" {
		return doors, nil
	}
	seed, _ := director.ParseHosts(cfg.Director.Backends)
	name := cfg.Director.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	// Names given to the admin doors are completed as logins are
	// (auth.default_realm, auth.username_format) before they are hashed.
	chain := &passdb.Chain{DefaultRealm: cfg.Auth.DefaultRealm, UsernameFormat: cfg.Auth.UsernameFormat}
	ops := &admin.DirectorOps{D: dir, Configured: seed, Name: name, Username: func(u string) (string, error) {
		fixed, _, err := chain.Username(u)
		return fixed, err
	}}
	if a.Socket != "" {
		doors.socket = &admin.Socket{Path: a.Socket, Mode: os.FileMode(a.SocketPerm()), Ops: ops, Log: log}
	}
	if a.Listen != "" {
		tokens, err := admin.LoadTokens(a.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("admin.token_file: %w", err)
		}
		var tlsConfig *tls.Config
		if a.TLS.Cert != "" {
			cert, err := tls.LoadX509KeyPair(a.TLS.Cert, a.TLS.Key)
			if err != nil {
				return nil, fmt.Errorf("admin.tls: %w", err)
			}
			tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		doors.mux = http.NewServeMux()
		(&admin.API{Ops: ops, Log: log}).Register(doors.mux)
		doors.http = &admin.HTTPServer{Address: a.Listen, TLS: tlsConfig, Handler: tokens.Require(doors.mux, log), Log: log}
	}
	return doors, nil
}

// start binds the doors and serves them until ctx is done; wait returns
// once they stopped.
func (d *adminDoors) start(ctx context.Context) (wait func(), err error) {
	if d.socket != nil {
		if err := d.socket.Listen(); err != nil {
			return nil, err
		}
	}
	if d.http != nil {
		if err := d.http.Listen(); err != nil {
			if d.socket != nil {
				// Served for no time: Serve on a done context removes it.
				done, cancel := context.WithCancel(ctx)
				cancel()
				d.socket.Serve(done)
			}
			return nil, err
		}
	}
	var wg sync.WaitGroup
	if d.socket != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.socket.Serve(ctx)
		}()
	}
	if d.http != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.http.Serve(ctx)
		}()
	}
	return wg.Wait, nil
}
