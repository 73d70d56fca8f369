// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"time"
)

// Health configures the built-in backend health checks (director.health);
// without the section there are none.
type Health struct {
	// Interval is the time between two checks of a backend (default 10s).
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one check, connect to goodbye (default 5s, at most
	// the interval).
	Timeout time.Duration `yaml:"timeout"`
	// Fall consecutive failures take a backend down (default 3); Rise
	// consecutive successes bring a backend the checks took down back
	// (default 2).
	Fall int `yaml:"fall"`
	Rise int `yaml:"rise"`
	// Check is tcp (connect), banner (the greeting, default) or login (a
	// test account logs in; LMTP: MAIL FROM and RCPT TO).
	Check string `yaml:"check"`
	// Protocol is imap (default), pop3, lmtp or sieve.
	Protocol string `yaml:"protocol"`
	// Port overrides the backend's port of Protocol (backend.ports, or
	// backend.hosts.<ip>.ports; imaps / pop3s with tls: implicit).
	Port int `yaml:"port"`
	// LoginUser and LoginPassword are the test account of check: login.
	LoginUser     string `yaml:"login_user"`
	LoginPassword string `yaml:"login_password"`
	// TLS is none (default), implicit or starttls; certificates are
	// verified as for backend logins (backend.tls_ca_file, the backend's
	// IP) unless TLSAnyCert.
	TLS        string `yaml:"tls"`
	TLSAnyCert bool   `yaml:"tls_any_cert"`
}

func (h *Health) applyDefaults() {
	if h.Interval == 0 {
		h.Interval = 10 * time.Second
	}
	if h.Timeout == 0 {
		h.Timeout = min(5*time.Second, h.Interval)
	}
	if h.Fall == 0 {
		h.Fall = 3
	}
	if h.Rise == 0 {
		h.Rise = 2
	}
	if h.Check == "" {
		h.Check = "banner"
	}
	if h.Protocol == "" {
		h.Protocol = "imap"
	}
	if h.TLS == "" {
		h.TLS = "none"
	}
}

func (h *Health) validate(add func(string, ...any)) {
	if h.Interval < 100*time.Millisecond {
		add("director.health.interval: at least 100ms")
	}
	if h.Timeout <= 0 || h.Timeout > h.Interval {
		add("director.health.timeout: positive and at most the interval (%v)", h.Interval)
	}
	if h.Fall < 1 || h.Fall > 100 {
		add("director.health.fall: want 1..100")
	}
	if h.Rise < 1 || h.Rise > 100 {
		add("director.health.rise: want 1..100")
	}
	switch h.Check {
	case "tcp", "banner", "login":
	default:
		add("director.health.check: want tcp, banner or login")
	}
	switch h.Protocol {
	case "imap", "pop3", "lmtp", "sieve":
	default:
		add("director.health.protocol: want imap, pop3, lmtp or sieve")
	}
	if h.Port < 0 || h.Port > 65535 {
		add("director.health.port: %d is not a port", h.Port)
	}
	switch h.TLS {
	case "none":
	case "implicit":
		if h.Port == 0 && (h.Protocol == "lmtp" || h.Protocol == "sieve") {
			add("director.health.port: needed with tls: implicit for %s (backend.ports has no TLS port for it)", h.Protocol)
		}
	case "starttls":
		if h.Check == "tcp" {
			add("director.health.tls: starttls needs check: banner or login")
		}
	default:
		add("director.health.tls: want none, implicit or starttls")
	}
	if h.Check == "login" {
		if h.LoginUser == "" {
			add("director.health.login_user: needed with check: login")
		}
		if h.LoginPassword == "" && h.Protocol != "lmtp" {
			add("director.health.login_password: needed with check: login (%s)", h.Protocol)
		}
	}
	for _, f := range []struct{ key, v string }{{"login_user", h.LoginUser}, {"login_password", h.LoginPassword}} {
		if strings.ContainsAny(f.v, "\r\n\x00") {
			add("director.health.%s: may not contain CR, LF or NUL", f.key)
		}
	}
	if strings.ContainsAny(h.LoginUser, " <>\"") && h.Protocol != "imap" {
		add("director.health.login_user: may not contain spaces, quotes or angle brackets for %s", h.Protocol)
	}
}

// HealthPort returns the port to check on backend ip: health.port, else the
// backend's port of the protocol (imaps / pop3s with implicit TLS).
func (c *Config) HealthPort(ip string) int {
	h := c.Director.Health
	if h == nil {
		return 0
	}
	if h.Port != 0 {
		return h.Port
	}
	name := h.Protocol
	if h.TLS == "implicit" {
		name += "s"
	}
	if bh, ok := c.Backend.Hosts[ip]; ok {
		if p := bh.Ports.Map()[name]; p != 0 {
			return p
		}
	}
	return c.Backend.Ports.Map()[name]
}
