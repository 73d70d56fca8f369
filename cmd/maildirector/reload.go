// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/maildirector/maildirector/admin"
	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/health"
	"github.com/maildirector/maildirector/metrics"
)

// reloader re-reads the configuration file and applies it to the running
// gateway (SIGHUP, maildirector reload, POST /api/v1/reload). One reload
// runs at a time.
type reloader struct {
	path string
	// base is serve's context: what a reload starts lives until it ends
	// (not until the request that asked for the reload does).
	base  context.Context
	a     *app
	log   *slog.Logger
	level *slog.LevelVar
	// health is the running health checker, restarted when
	// director.health changes.
	health *healthRun

	mu  sync.Mutex
	cfg *config.Config // the configuration in use
}

// restartOnly are the settings a running gateway cannot change: the
// cluster's identity and store (every gateway must agree on them, and
// the store connection carries the sessions' leases), the log format,
// and the admin doors (a reload may come through them).
var restartOnly = []struct {
	key string
	get func(c *config.Config) any
}{
	{"log.format", func(c *config.Config) any { return c.Log.Format }},
	{"director.user_expire", func(c *config.Config) any { return c.Director.UserExpire }},
	{"director.username_hash", func(c *config.Config) any { return c.Director.UsernameHash }},
	{"director.store", func(c *config.Config) any { return c.Director.Store }},
	{"director.data_dir", func(c *config.Config) any { return c.Director.DataDir }},
	{"director.lease_ttl", func(c *config.Config) any { return c.Director.LeaseTTL }},
	{"director.name", func(c *config.Config) any { return c.Director.Name }},
	{"director.etcd", func(c *config.Config) any { return c.Director.Etcd }},
	{"director.embedded", func(c *config.Config) any { return c.Director.Embedded }},
	{"admin.socket", func(c *config.Config) any { return c.Admin.Socket }},
	{"admin.socket_mode", func(c *config.Config) any { return c.Admin.SocketMode }},
	{"admin.listen", func(c *config.Config) any { return c.Admin.Listen }},
	{"admin.tls", func(c *config.Config) any { return c.Admin.TLS }},
}

// closeWhenUnused closes a replaced generation's databases once no
// connection it accepted still logs in or delivers with them (relayed
// sessions do not use them), or when the gateway stops.
func closeWhenUnused(ctx context.Context, old *front) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		var n int64
		for _, l := range old.listeners {
			n += l.InUse()
		}
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return // serve closes the current generation; the process ends
		case <-t.C:
		}
	}
	old.auth.Close()
}

// reload re-reads the file and applies it. A configuration with any
// problem is refused as a whole and changes nothing.
func (r *reloader) reload(ctx context.Context, by string) admin.ReloadReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := r.apply(ctx)
	if r.a.metrics != nil {
		r.a.metrics.Reloaded(rep.OK)
	}
	if rep.OK {
		r.log.Info("configuration reloaded", "by", by, "file", r.path, "notes", strings.Join(rep.Notes, "; "),
			"restart_needed", strings.Join(rep.Restart, ", "))
	} else {
		for _, p := range rep.Problems {
			r.log.Error("configuration reload refused; the running configuration stays", "by", by, "file", r.path, "problem", p)
		}
	}
	return rep
}

// refusal is the report of a configuration refused for err: one problem
// per line of it (errors.Join lists every problem found).
func refusal(err error) admin.ReloadReport {
	var problems []string
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			problems = append(problems, line)
		}
	}
	return admin.ReloadReport{Problems: problems}
}

func (r *reloader) apply(ctx context.Context) admin.ReloadReport {
	cfg, err := config.Load(r.path)
	if err != nil {
		return refusal(err)
	}
	old := r.a.current()
	f, err := buildFront(cfg, r.log, shared{director: r.a.director, registry: r.a.registry, metrics: r.a.metrics, penalty: old.pipeline.Penalty, self: r.a.server.SelfAddrs, warm: r.a.warm})
	if err != nil {
		return refusal(err)
	}
	if _, err := director.ParseHosts(cfg.Director.Backends); err != nil {
		f.auth.Close()
		return refusal(fmt.Errorf("director.backends: %w", err))
	}
	if cfg.Director.Health != nil {
		if err := r.health.check(cfg); err != nil {
			f.auth.Close()
			return refusal(err)
		}
	}
	if err := r.a.server.Apply(f.listeners, f.limits); err != nil {
		f.auth.Close()
		return refusal(err)
	}
	// From here on the new configuration is in use.
	r.a.mu.Lock()
	r.a.front = f
	r.a.mu.Unlock()
	go closeWhenUnused(r.base, old)
	rep := admin.ReloadReport{OK: true}
	for _, ro := range restartOnly {
		if !reflect.DeepEqual(ro.get(r.cfg), ro.get(cfg)) {
			rep.Restart = append(rep.Restart, ro.key)
		}
	}
	r.a.warm.SetSize(*cfg.Backend.WarmConnections)
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	if level != r.level.Level() {
		rep.Notes = append(rep.Notes, fmt.Sprintf("log level %s → %s", r.level.Level(), level))
		r.level.Set(level)
	}
	rep.Notes = append(rep.Notes, fmt.Sprintf("%d listeners, %d passdbs, %d userdbs; auth cache emptied", len(f.listeners), len(cfg.Passdb), len(cfg.Userdb)))
	if err := r.a.admin.reloadTokens(cfg); err != nil {
		// The file was readable when the configuration was checked;
		// keep the old tokens rather than lock everybody out.
		rep.Notes = append(rep.Notes, "admin tokens kept: "+err.Error())
	}
	if !reflect.DeepEqual(r.cfg.Director.Health, cfg.Director.Health) {
		if err := r.health.restart(ctx, cfg); err != nil {
			rep.Notes = append(rep.Notes, "health checks not restarted: "+err.Error())
		} else {
			rep.Notes = append(rep.Notes, "health checks restarted")
		}
	}
	// The file's backends only seed an empty store: say how they differ.
	if hosts, err := director.ParseHosts(cfg.Director.Backends); err == nil {
		for _, d := range director.HostDiff(hosts, r.a.director.Hosts()) {
			rep.Notes = append(rep.Notes, "director.backends differs from the store, which wins (use maildirector director add/remove): "+d)
		}
	}
	r.cfg = cfg
	r.a.setSources(r.health.checker())
	return rep
}

// healthRun is the running health checker, restartable by a reload.
type healthRun struct {
	store director.Store
	name  string
	log   *slog.Logger
	base  context.Context // serve's context

	mu     sync.Mutex
	c      *health.Checker
	cancel context.CancelFunc
	wait   func()
}

// check builds (without starting) the checker cfg asks for, to refuse a
// reload that could not start it.
func (h *healthRun) check(cfg *config.Config) error {
	_, _, err := newHealthChecker(cfg, h.store, h.name, h.log)
	return err
}

// restart stops the checker running (if any) and starts cfg's (if any).
func (h *healthRun) restart(_ context.Context, cfg *config.Config) error {
	h.stop()
	h.mu.Lock()
	defer h.mu.Unlock()
	ctx, cancel := context.WithCancel(h.base)
	c, wait, err := startHealth(ctx, cfg, h.store, h.name, h.log)
	if err != nil {
		cancel()
		return err
	}
	h.c, h.cancel, h.wait = c, cancel, wait
	return nil
}

func (h *healthRun) stop() {
	h.mu.Lock()
	cancel, wait := h.cancel, h.wait
	h.c, h.cancel, h.wait = nil, nil, nil
	h.mu.Unlock()
	if cancel != nil {
		cancel()
		wait()
	}
}

func (h *healthRun) checker() *health.Checker {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.c
}

// setSources points the metrics at the current state.
func (a *app) setSources(hc *health.Checker) {
	if a.metrics == nil {
		return
	}
	f := a.current()
	src := metrics.Sources{Director: a.director, Sessions: a.registry, Bounds: a.server}
	for _, l := range a.server.Current() {
		src.Listeners = append(src.Listeners, metrics.ListenerSource{Protocol: l.Protocol, Prelogin: l})
	}
	if f.auth.Cache != nil {
		src.Cache = f.auth.Cache
	}
	if hc != nil {
		src.Health = hc
	}
	a.metrics.SetSources(src)
}
