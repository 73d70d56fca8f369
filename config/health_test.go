// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"
	"time"
)

func TestHealthDefaults(t *testing.T) {
	c, err := Parse([]byte(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	if c.Director.Health != nil || c.HealthPort("127.0.0.11") != 0 {
		t.Fatal("health checks without a director.health section")
	}
	c, err = Parse([]byte(issueExample + "  health: {}\nbackend:\n  ports: {imap: 1143}\n  hosts:\n    127.0.0.12: {ports: {imap: 2143}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := c.Director.Health
	if h.Interval != 10*time.Second || h.Timeout != 5*time.Second || h.Fall != 3 || h.Rise != 2 ||
		h.Check != "banner" || h.Protocol != "imap" || h.TLS != "none" {
		t.Fatalf("defaults: %+v", h)
	}
	if p := c.HealthPort("127.0.0.11"); p != 1143 {
		t.Fatalf("port of .11: %d", p)
	}
	if p := c.HealthPort("127.0.0.12"); p != 2143 {
		t.Fatalf("port of .12: %d", p)
	}
	c, err = Parse([]byte(issueExample + "  health: {interval: 2s, protocol: pop3, tls: implicit}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Director.Health.Timeout != 2*time.Second || c.HealthPort("127.0.0.11") != 995 {
		t.Fatalf("timeout %v, port %d", c.Director.Health.Timeout, c.HealthPort("127.0.0.11"))
	}
	c, err = Parse([]byte(issueExample + "  health: {check: login, protocol: lmtp, login_user: probe@example.org, port: 2424}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.HealthPort("127.0.0.11") != 2424 {
		t.Fatal("health.port ignored")
	}
}

func TestHealthValidation(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"{interval: 10ms}", "director.health.interval"},
		{"{interval: 1s, timeout: 2s}", "director.health.timeout"},
		{"{fall: -1}", "director.health.fall"},
		{"{rise: 101}", "director.health.rise"},
		{"{check: ping}", "director.health.check"},
		{"{protocol: smtp}", "director.health.protocol"},
		{"{port: 70000}", "director.health.port"},
		{"{tls: yes}", "director.health.tls"},
		{"{tls: starttls, check: tcp}", "starttls needs"},
		{"{tls: implicit, protocol: sieve}", "needed with tls: implicit"},
		{"{check: login}", "director.health.login_user"},
		{"{check: login, login_user: u}", "director.health.login_password"},
		{`{check: login, login_user: "u\r\n", login_password: p}`, "CR, LF or NUL"},
		{"{check: login, protocol: lmtp, login_user: a b}", "spaces"},
		{"{intervall: 1s}", "intervall"},
	} {
		_, err := Parse([]byte(issueExample + "  health: " + tc.yaml + "\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("health: %s: want an error with %q, got %v", tc.yaml, tc.want, err)
		}
	}
}
