// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/memory"
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
	if _, err := build(cfg, log, memory.New()); err != nil {
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
	cfg, ok := loadConfig("serve", args, stderr)
	if !ok {
		return 1
	}
	log := newLogger(cfg.Log, os.Stderr)
	st, err := openStore(cfg, log, true)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return 1
	}
	defer st.Close()
	a, err := build(cfg, log, st.store)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	name := cfg.Director.Name
	if name == "" {
		name, _ = os.Hostname()
	}
	startCtx, cancelStart := context.WithTimeout(context.Background(), 30*time.Second)
	err = a.director.Start(startCtx, "serve on "+name)
	cancelStart()
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: director store: %v\n", err)
		return 1
	}
	if err := a.server.Start(); err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	for _, l := range a.server.Listeners {
		if ta, ok := l.Addr().(*net.TCPAddr); ok {
			ap := ta.AddrPort()
			a.pipeline.Self = append(a.pipeline.Self, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		}
	}
	defer a.auth.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go a.director.Run(ctx)
	adminWait, err := a.admin.start(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	_, healthWait, err := startHealth(ctx, cfg, st.store, name, log)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	// SIGHUP flushes the auth cache, as it does in Dovecot.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if c := a.auth.Cache; c != nil {
					log.Info("auth cache flushed", "entries", c.Flush())
				}
			}
		}
	}()
	done := make(chan struct{})
	go func() {
		a.server.Serve(ctx)
		close(done)
	}()
	log.Info("maildirector started", "version", version, "backends", len(a.director.Hosts()), "store", st.where, "fenced", a.director.IsFenced())
	<-ctx.Done()
	log.Info("shutting down")
	a.server.Shutdown(cfg.LMTP.ShutdownGrace)
	<-done
	adminWait()
	healthWait()
	return 0
}
