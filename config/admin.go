// SPDX-License-Identifier: Apache-2.0

package config

import (
	"net/netip"
	"path/filepath"
	"strconv"
)

// Admin configures the runtime admin surface: a UNIX socket speaking
// Dovecot 2.3's director-admin protocol (doveadm director, poolmon) and an
// HTTP JSON API behind bearer tokens.
type Admin struct {
	// Socket is the path of the director-admin socket ("": none).
	Socket string `yaml:"socket"`
	// SocketMode is its permission bits, in octal (default "0600").
	SocketMode string `yaml:"socket_mode"`
	// Listen is the API's "IP:port" ("": none).
	Listen string `yaml:"listen"`
	// TokenFile holds the API's bearer tokens, one per line (optionally
	// "NAME TOKEN"); needed with Listen.
	TokenFile string `yaml:"token_file"`
	// TLS serves the API over HTTPS.
	TLS CertKey `yaml:"tls"`

	mode uint32
}

// SocketPerm returns the socket's parsed permission bits.
func (a *Admin) SocketPerm() uint32 { return a.mode }

// adminSocketSpare is what the admin socket needs beyond its directory's
// path while it is made (a private directory next to it, see
// admin.MaxSocketPath); a UNIX socket path has at most 107 bytes.
const adminSocketSpare = len("/.adm0123456789/s")

func (a *Admin) applyDefaults() {
	if a.SocketMode == "" {
		a.SocketMode = "0600"
	}
}

func (a *Admin) validate(add func(string, ...any)) {
	if a.Socket != "" {
		switch {
		case !filepath.IsAbs(a.Socket):
			add("admin.socket: %q is not an absolute path", a.Socket)
		case len(a.Socket) > 107 || len(filepath.Dir(a.Socket))+adminSocketSpare > 107:
			add("admin.socket: %q is too long for a UNIX socket (its directory may have at most %d bytes)", a.Socket, 107-adminSocketSpare)
		}
	}
	m, err := strconv.ParseUint(a.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		add("admin.socket_mode: %q is not octal permission bits", a.SocketMode)
	}
	a.mode = uint32(m)
	if a.Listen != "" {
		if _, err := netip.ParseAddrPort(a.Listen); err != nil {
			add("admin.listen: want IP:port, not %q", a.Listen)
		}
		if a.TokenFile == "" {
			add("admin.listen: admin.token_file is needed (every API request must carry a token)")
		}
	} else {
		if a.TokenFile != "" {
			add("admin.token_file: only with admin.listen")
		}
		if a.TLS.Cert != "" || a.TLS.Key != "" {
			add("admin.tls: only with admin.listen")
		}
	}
	if (a.TLS.Cert == "") != (a.TLS.Key == "") {
		add("admin.tls: cert and key go together")
	}
}
