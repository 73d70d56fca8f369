// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
	"github.com/maildirector/maildirector/metrics"
)

func loadConfig(name string, args []string, stderr io.Writer) (*config.Config, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "/etc/maildirector/maildirector.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return nil, false
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return nil, false
	}
	return cfg, true
}

func cmdConfigCheck(args []string, stdout, stderr io.Writer) int {
	cfg, ok := loadConfig("config check", args, stderr)
	if !ok {
		return 1
	}
	log := newLogger(cfg.Log, os.Stderr)
	if _, err := build(cfg, log, memory.New(), nil); err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "configuration OK")
	// The store's backends win over the file's: say how they differ.
	if cfg.Director.Store != "memory" {
		hosts, _ := director.ParseHosts(cfg.Director.Backends)
		ctx, cancel := toolContext()
		defer cancel()
		stored, where, err := storedHosts(ctx, cfg, log)
		switch {
		case errors.Is(err, errNoStore):
			fmt.Fprintf(stdout, "director store: %v\n", err)
		case err != nil:
			fmt.Fprintf(stdout, "director store: cannot be read: %v\n", err)
		default:
			diff := director.HostDiff(hosts, stored)
			fmt.Fprintf(stdout, "director store: %s, %d backends", where, len(stored))
			if len(diff) == 0 {
				fmt.Fprintln(stdout, ", as configured")
			} else {
				fmt.Fprintln(stdout, "; the store's backends win over the configuration's:")
				for _, d := range diff {
					fmt.Fprintf(stdout, "  %s\n", d)
				}
			}
		}
	}
	return 0
}

// storedHosts reads the backends from the store cfg names.
func storedHosts(ctx context.Context, cfg *config.Config, log *slog.Logger) ([]director.HostRecord, string, error) {
	st, err := openStore(cfg, log, false)
	if err != nil {
		return nil, "", err
	}
	defer st.Close()
	hosts, err := st.store.Hosts(ctx)
	return hosts, st.where, err
}

func cmdServe(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("c", "/etc/maildirector/maildirector.yaml", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 1
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	level := new(slog.LevelVar)
	log := newLoggerLevel(cfg.Log, os.Stderr, level)
	st, err := openStore(cfg, log, true)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return 1
	}
	defer st.Close()
	m := metrics.New()
	a, err := build(cfg, log, m.Store(st.store), m)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	startCtx, cancelStart := context.WithTimeout(context.Background(), 30*time.Second)
	err = a.director.Start(startCtx, "serve on "+a.name)
	cancelStart()
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return 1
	}
	defer func() { a.current().auth.Close() }()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go a.director.Run(ctx)
	// The checks' store requests are timed like the director's.
	hr := &healthRun{store: a.director.Store(), name: a.name, log: log, base: ctx}
	if err := hr.restart(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	defer hr.stop()
	r := &reloader{path: *path, base: ctx, a: a, log: log, level: level, health: hr, cfg: cfg}
	a.admin.mount(a, r.reload)
	adminWait, err := a.admin.start(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	// The mail listeners last: once a client can connect, the admin
	// doors (metrics, the status page, reload) answer too.
	if err := a.server.Start(); err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		stop()
		adminWait()
		return 1
	}
	a.setSources(hr.checker())
	// SIGHUP reloads the configuration (which also empties the auth
	// cache, as Dovecot's reload does).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				notify(log, daemon.SdNotifyReloading)
				r.reload(ctx, "SIGHUP")
				notify(log, daemon.SdNotifyReady)
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		a.server.Serve(ctx)
		close(done)
	}()
	log.Info("maildirector started", "version", version, "backends", len(a.director.Hosts()), "store", st.where, "fenced", a.director.IsFenced())
	notify(log, daemon.SdNotifyReady)
	go watchdog(ctx, log)
	<-ctx.Done()
	log.Info("shutting down")
	notify(log, daemon.SdNotifyStopping)
	a.server.Shutdown(cfg.LMTP.ShutdownGrace)
	a.warm.Close()
	<-done
	adminWait()
	hr.stop()
	return 0
}
