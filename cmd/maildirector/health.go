// SPDX-License-Identifier: Apache-2.0

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/health"
)

// newHealthChecker builds the built-in health checks cfg configures (nil
// when director.health is not set), without starting them.
func newHealthChecker(cfg *config.Config, store director.Store, name string, log *slog.Logger) (*health.Checker, bool, error) {
	hc := cfg.Director.Health
	if hc == nil {
		return nil, false, nil
	}
	el, ok := store.(health.Elector)
	if !ok {
		return nil, false, fmt.Errorf("director.health: the %s store holds no elections", cfg.Director.Store)
	}
	hcfg := health.Config{
		Interval: hc.Interval, Timeout: hc.Timeout, Fall: hc.Fall, Rise: hc.Rise,
		Check: hc.Check, Protocol: hc.Protocol, Port: cfg.HealthPort,
		LoginUser: hc.LoginUser, LoginPassword: hc.LoginPassword,
		HeloName: name,
		Hosts:    health.StoreHosts{Store: store, Gateway: name},
		Elector:  el,
		Logger:   log,
	}
	if hc.TLS != "none" {
		hcfg.TLS = hc.TLS
		var err error
		if hcfg.TLSConfig, err = backendTLSConfig(cfg.Backend); err != nil {
			return nil, false, err
		}
		hcfg.TLSConfig.InsecureSkipVerify = hc.TLSAnyCert
	}
	c, err := health.New(hcfg)
	if err != nil {
		return nil, false, err
	}
	return c, true, nil
}

// startHealth starts the built-in health checks when director.health is
// configured (they run while this gateway leads the store's "health"
// election). wait returns once they stopped after ctx ended, so that the
// gateway resigns before its store closes.
func startHealth(ctx context.Context, cfg *config.Config, store director.Store, name string, log *slog.Logger) (c *health.Checker, wait func(), err error) {
	c, on, err := newHealthChecker(cfg, store, name, log)
	if err != nil {
		return nil, nil, err
	}
	if !on {
		return nil, func() {}, nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	return c, func() {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}, nil
}
