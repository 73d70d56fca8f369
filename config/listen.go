// SPDX-License-Identifier: Apache-2.0

package config

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Listener is one address the gateway accepts clients on.
type Listener struct {
	// Protocol is imap, imaps, pop3, pop3s, sieve (ManageSieve), lmtp or
	// doveadm.
	Protocol string `yaml:"protocol"`
	// Address is "IP:port", or the path of a UNIX socket ("/run/...").
	Address string `yaml:"address"`
	// TLS is "implicit", "starttls" or "none". Default: implicit for imaps
	// and pop3s; starttls when a certificate is configured; else none.
	TLS string `yaml:"tls"`
	// Mode is a UNIX socket's permission bits, in octal (default "0660").
	Mode string `yaml:"mode"`
	// HAProxy makes the listener expect a PROXY protocol v1 or v2 header
	// from haproxy_trusted_networks (Dovecot's haproxy = yes); others are
	// refused.
	HAProxy bool `yaml:"haproxy"`
	// AllowNetworks limits who may connect (CIDRs). Default: anyone, but
	// loopback only for TCP LMTP, which needs no login, and for TCP
	// doveadm, whose password opens every mailbox.
	AllowNetworks []string `yaml:"allow_networks"`

	allow []netip.Prefix
	mode  uint32
}

// services maps listener protocols to services and implicit TLS.
var services = map[string]struct {
	service  string
	implicit bool
}{
	"imap": {"imap", false}, "imaps": {"imap", true},
	"pop3": {"pop3", false}, "pop3s": {"pop3", true},
	"sieve": {"sieve", false}, "managesieve": {"sieve", false},
	"lmtp": {"lmtp", false}, "doveadm": {"doveadm", false},
}

// Service returns imap, pop3, sieve, lmtp or doveadm.
func (l *Listener) Service() string { return services[l.Protocol].service }

// Unix reports whether the listener is a UNIX socket.
func (l *Listener) Unix() bool { return strings.HasPrefix(l.Address, "/") }

// Allow returns the parsed allow_networks (nil: anyone).
func (l *Listener) Allow() []netip.Prefix { return l.allow }

// SocketMode returns the UNIX socket's permission bits.
func (l *Listener) SocketMode() uint32 { return l.mode }

func (l *Listener) applyDefaults(haveCert bool) {
	if l.TLS == "" {
		switch {
		case services[l.Protocol].implicit:
			l.TLS = "implicit"
		case haveCert:
			l.TLS = "starttls"
		default:
			l.TLS = "none"
		}
	}
	if l.Mode == "" {
		l.Mode = "0660"
	}
	if l.AllowNetworks == nil && (l.Service() == "lmtp" || l.Service() == "doveadm") && !l.Unix() {
		l.AllowNetworks = []string{"127.0.0.0/8", "::1"}
	}
}

func (l *Listener) validate(add func(string, ...any), i int, tls TLS) {
	if _, ok := services[l.Protocol]; !ok {
		add("listen[%d]: unknown protocol %q (known: imap, imaps, pop3, pop3s, sieve, lmtp, doveadm)", i, l.Protocol)
	}
	if l.Unix() {
		if l.HAProxy {
			add("listen[%d]: a UNIX socket takes no PROXY header", i)
		}
		m, err := strconv.ParseUint(l.Mode, 8, 32)
		if err != nil || m > 0o777 {
			add("listen[%d]: mode %q is not octal permission bits", i, l.Mode)
		}
		l.mode = uint32(m)
	} else if _, _, err := net.SplitHostPort(l.Address); err != nil {
		add("listen[%d]: address %q: %v", i, l.Address, err)
	}
	switch l.TLS {
	case "none", "starttls", "implicit":
	default:
		add("listen[%d]: tls must be implicit, starttls or none, not %q", i, l.TLS)
	}
	if services[l.Protocol].implicit && l.TLS != "implicit" {
		add("listen[%d]: %s is implicit TLS; tls: %s contradicts it", i, l.Protocol, l.TLS)
	}
	if l.TLS != "none" && (tls.Cert == "" || tls.Key == "") {
		add("listen[%d]: tls %s needs tls.cert and tls.key", i, l.TLS)
	}
	for _, n := range l.AllowNetworks {
		p, err := parsePrefix(n)
		if err != nil {
			add("listen[%d].allow_networks: %v", i, err)
			continue
		}
		l.allow = append(l.allow, p)
	}
}
