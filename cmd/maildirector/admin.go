// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	"github.com/maildirector/maildirector/admin"
	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/metrics"
	"github.com/maildirector/maildirector/passdb"
	"github.com/maildirector/maildirector/statuspage"
)

// adminDoors are the admin socket and the admin listener serve runs (each
// nil when not configured).
type adminDoors struct {
	socket *admin.Socket
	http   *admin.HTTPServer
	// mux holds the admin listener's routes, all behind the tokens: the
	// API, and whatever else that listener serves (metrics, status page).
	mux    *http.ServeMux
	api    *admin.API
	tokens *admin.Tokens
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
		doors.api = &admin.API{Ops: ops, Log: log}
		doors.tokens = tokens
		doors.http = &admin.HTTPServer{Address: a.Listen, TLS: tlsConfig, Handler: tokens.Require(doors.mux, log), Log: log}
	}
	return doors, nil
}

// mount puts the routes on the admin listener (the API, with reload when
// given; metrics; the activity feed), and reload on the socket.
func (d *adminDoors) mount(a *app, reload admin.Reloader) {
	if d.socket != nil {
		d.socket.Reload = reload
	}
	if d.mux == nil {
		return
	}
	d.api.Reload = reload
	d.api.Register(d.mux)
	// The page's pattern has no method: every API pattern is more
	// specific, so it takes only what nothing else does.
	d.mux.Handle("/", statuspage.Handler())
	// Go's profiler, behind the same tokens: a site that sees a gateway
	// use more CPU or memory than it should can take a profile from the
	// running process (go tool pprof -http : URL) instead of guessing.
	d.mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	d.mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	d.mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	d.mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	d.mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if a.metrics != nil {
		d.mux.Handle("GET /metrics", a.metrics.Handler())
		d.mux.HandleFunc("GET /api/v1/activity", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(activity{
				Gateway: a.name, Now: time.Now(), Fenced: a.director.IsFenced(),
				Logins: a.metrics.Logins(), Events: a.director.Events(),
			})
		})
	}
}

// activity is GET /api/v1/activity: what the status page draws besides
// /api/v1/status.
type activity struct {
	Gateway string                `json:"gateway"`
	Now     time.Time             `json:"now"`
	Fenced  bool                  `json:"fenced"`
	Logins  []metrics.LoginBucket `json:"logins"`
	Events  []director.Event      `json:"events"`
}

// reloadTokens re-reads the token file (a reload).
func (d *adminDoors) reloadTokens(cfg *config.Config) error {
	if d.tokens == nil || cfg.Admin.TokenFile == "" {
		return nil
	}
	t, err := admin.LoadTokens(cfg.Admin.TokenFile)
	if err != nil {
		return fmt.Errorf("admin.token_file: %w", err)
	}
	d.tokens.Replace(t)
	return nil
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
