// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/maildirector/maildirector/config"
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
	if _, err := build(cfg, newLogger(cfg.Log, os.Stderr)); err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "configuration OK")
	return 0
}

func cmdServe(args []string, stderr io.Writer) int {
	cfg, ok := loadConfig("serve", args, stderr)
	if !ok {
		return 1
	}
	log := newLogger(cfg.Log, os.Stderr)
	a, err := build(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "maildirector: %v\n", err)
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
	log.Info("maildirector started", "version", version, "backends", len(a.director.Hosts()))
	<-ctx.Done()
	log.Info("shutting down")
	a.server.Shutdown(cfg.LMTP.ShutdownGrace)
	<-done
	return 0
}
