// SPDX-License-Identifier: Apache-2.0

package config

// DefaultDoveadmPort is the backends' doveadm port when none is
// configured: Dovecot has no default (doveadm_port = 0 means off), and
// 2425 is the port its documentation uses.
const DefaultDoveadmPort = 2425

// Doveadm configures doveadm proxying (listen: protocol doveadm).
type Doveadm struct {
	// Password is Dovecot's doveadm_password: doveadm clients must give
	// it, and the gateway gives it to the backends' doveadm servers, so
	// it must be theirs too (Dovecot's own doveadm proxy does the same).
	Password string `yaml:"password"`
	// Port is the backends' doveadm TCP port (their service doveadm
	// inet_listener), unless a passdb port field says otherwise for a
	// user, as with Dovecot's doveadm proxy.
	Port int `yaml:"port"`
}

func (d *Doveadm) applyDefaults() {
	if d.Port == 0 {
		d.Port = DefaultDoveadmPort
	}
}

func (d *Doveadm) validate(add func(string, ...any), listen []Listener) {
	if d.Port < 1 || d.Port > 65535 {
		add("doveadm.port: %d is not a port", d.Port)
	}
	for i := range listen {
		if listen[i].Service() == "doveadm" && d.Password == "" {
			add("listen[%d]: a doveadm listener needs doveadm.password (the backends' doveadm_password)", i)
		}
	}
}
