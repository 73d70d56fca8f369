// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"net/netip"
	"time"
)

// Backend configures how the gateway reaches and logs in to backends.
type Backend struct {
	Ports Ports `yaml:"ports"`
	// Hosts overrides settings per backend IP.
	Hosts map[string]BackendHost `yaml:"hosts"`
	// Timeout bounds connecting to and logging in on a backend, retries
	// included (Dovecot's login_proxy_timeout; a passdb proxy_timeout
	// field overrides it per user).
	Timeout time.Duration `yaml:"timeout"`
	// ConnectAttempts is how many times a refused or timed-out connection
	// is tried before the client gets a temporary failure.
	ConnectAttempts int `yaml:"connect_attempts"`
	// WarmConnections is how many plain connections per backend address
	// are dialled ahead of need, greeting on its way, so that a login
	// does not wait for the connect and the greeting (0: none; default
	// 2). Each waits at most 10 s; PROXY headers and ssl=yes backends
	// are never warmed.
	WarmConnections *int `yaml:"warm_connections"`
	// TLSCAFile verifies backends reached with ssl=yes / starttls=yes
	// (PEM bundle; default: the system's roots).
	TLSCAFile string `yaml:"tls_ca_file"`
	// TLSCert and TLSKey are a client certificate to show backends.
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// SendProxyProtocol sends backends a PROXY protocol v2 header with the
	// client's address instead of IMAP ID / XCLIENT.
	SendProxyProtocol bool `yaml:"send_proxy_protocol"`
	// MasterUser and MasterPassword log in on backends for clients whose
	// SASL mechanism never shows the gateway their password (CRAM-MD5,
	// DIGEST-MD5, SCRAM, EXTERNAL, ANONYMOUS), unless the passdb gives
	// master= and pass= fields.
	MasterUser     string `yaml:"master_user"`
	MasterPassword string `yaml:"master_password"`
	// MasterFromPassdb says the passdbs return master= and pass= for
	// every user, so that such mechanisms need no master_user here.
	MasterFromPassdb bool `yaml:"master_from_passdb"`
}

// Ports are backend ports per protocol; imaps and pop3s are used when the
// passdb says ssl=yes.
type Ports struct {
	IMAP  int `yaml:"imap"`
	IMAPS int `yaml:"imaps"`
	POP3  int `yaml:"pop3"`
	POP3S int `yaml:"pop3s"`
	LMTP  int `yaml:"lmtp"`
	Sieve int `yaml:"sieve"`
}

// BackendHost holds per-backend overrides.
type BackendHost struct {
	Ports Ports `yaml:"ports"`
}

// Map returns the ports by service name ("imap", "imaps", ...), zero
// ports left out.
func (p Ports) Map() map[string]int {
	m := map[string]int{}
	for k, v := range map[string]int{"imap": p.IMAP, "imaps": p.IMAPS, "pop3": p.POP3, "pop3s": p.POP3S, "lmtp": p.LMTP, "sieve": p.Sieve} {
		if v != 0 {
			m[k] = v
		}
	}
	return m
}

func (b *Backend) applyDefaults() {
	for _, d := range []struct {
		p *int
		v int
	}{{&b.Ports.IMAP, 143}, {&b.Ports.IMAPS, 993}, {&b.Ports.POP3, 110}, {&b.Ports.POP3S, 995}, {&b.Ports.LMTP, 24}, {&b.Ports.Sieve, 4190}} {
		if *d.p == 0 {
			*d.p = d.v
		}
	}
	if b.Timeout == 0 {
		b.Timeout = DefaultBackendTimeout
	}
	if b.ConnectAttempts == 0 {
		b.ConnectAttempts = DefaultConnectAttempts
	}
	if b.WarmConnections == nil {
		n := DefaultWarmConnections
		b.WarmConnections = &n
	}
}

func (b *Backend) validate(add func(string, ...any)) {
	checkPorts := func(where string, p Ports) {
		for name, v := range p.Map() {
			if v < 1 || v > 65535 {
				add("%s.%s: %d is not a port", where, name, v)
			}
		}
	}
	checkPorts("backend.ports", b.Ports)
	for ip, h := range b.Hosts {
		if _, err := netip.ParseAddr(ip); err != nil {
			add("backend.hosts: %q is not an IP address", ip)
		}
		checkPorts(fmt.Sprintf("backend.hosts[%s].ports", ip), h.Ports)
	}
	if b.ConnectAttempts < 1 || b.ConnectAttempts > 10 {
		add("backend.connect_attempts: want 1..10")
	}
	if b.WarmConnections != nil && (*b.WarmConnections < 0 || *b.WarmConnections > 64) {
		add("backend.warm_connections: want 0..64")
	}
	if (b.TLSCert == "") != (b.TLSKey == "") {
		add("backend: tls_cert and tls_key go together")
	}
}

// LMTP configures LMTP delivery.
type LMTP struct {
	// Lookup is how recipients are looked up: "passdb" (Dovecot's LMTP
	// proxy: a passdb lookup without password) or "userdb".
	Lookup string `yaml:"lookup"`
	// RecipientDelimiter separates a +detail (Dovecot's
	// recipient_delimiter, default "+"); "" disables detail handling.
	RecipientDelimiter *string `yaml:"recipient_delimiter"`
	// Hostname is the name in the LMTP greeting (default: the host name).
	Hostname string `yaml:"hostname"`
	// Timeout bounds a backend delivery (Dovecot's LMTP proxy_timeout,
	// default 125s).
	Timeout time.Duration `yaml:"timeout"`
	// MaxRecipients bounds recipients per transaction (default 1000).
	MaxRecipients int `yaml:"max_recipients"`
	// MaxMessageSize bounds DATA (default 0: none).
	MaxMessageSize ByteSize `yaml:"max_message_size"`
	// ShutdownGrace is how long a stopping gateway lets deliveries in
	// DATA finish before cutting them (default 60s): cut after a backend
	// delivered, the client would deliver again.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
}

func (l *LMTP) applyDefaults() {
	if l.Lookup == "" {
		l.Lookup = "passdb"
	}
	if l.RecipientDelimiter == nil {
		plus := "+"
		l.RecipientDelimiter = &plus
	}
	if l.Timeout == 0 {
		l.Timeout = 125 * time.Second
	}
	if l.ShutdownGrace == 0 {
		l.ShutdownGrace = time.Minute
	}
	if l.MaxRecipients == 0 {
		l.MaxRecipients = 1000
	}
}

func (l *LMTP) validate(add func(string, ...any)) {
	if l.Lookup != "passdb" && l.Lookup != "userdb" {
		add("lmtp.lookup: want passdb or userdb, not %q", l.Lookup)
	}
	if l.ShutdownGrace < 0 {
		add("lmtp.shutdown_grace: negative")
	}
}
