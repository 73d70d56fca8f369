// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// established reports whether c's TCP connection is still open both ways:
// a backend that closed it (restart, its own timeout) has sent a FIN,
// which leaves the socket in CLOSE_WAIT whatever bytes (a greeting, a
// farewell) wait unread before it.
func established(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	if err := rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		open = err == nil && info.State == unix.BPF_TCP_ESTABLISHED
	}); err != nil {
		return false
	}
	return open
}
