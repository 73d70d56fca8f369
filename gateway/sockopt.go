// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net"
	"time"
)

// keepAlive is the TCP keep-alive of client and backend sockets: on, the
// first probe after five idle minutes, the kernel's interval and count
// (net.ipv4.tcp_keepalive_intvl, _probes). Go's default (probes from 15 s
// of idleness, every 15 s) costs four setsockopt calls on every socket,
// two sockets per login, and a probe per idle session every 15 s — with
// tens of thousands of sessions sitting in IDLE, thousands of packets a
// second for nothing: a dead client still shows within minutes, and
// Dovecot's IDLE keep-alives through the relay find it sooner.
func keepAlive() net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: 5 * time.Minute, Interval: -1, Count: -1}
}
