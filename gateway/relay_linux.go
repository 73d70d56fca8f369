// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net"

	"golang.org/x/sys/unix"
)

// waitReadable blocks, in the runtime's poller, until c has bytes to read
// or has ended, without reading anything and without holding a buffer or
// a splice pipe: an idle relayed session then costs its two sockets and
// two parked goroutines. It reports the bytes ready (0 at end of stream)
// and ok=false when c is not a socket this can watch.
func waitReadable(c net.Conn) (ready int, ok bool, err error) {
	tc, isTCP := c.(*net.TCPConn)
	if !isTCP {
		return 0, false, nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	var one [1]byte
	var peeked int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, _, e := unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false
		}
		peeked, perr = n, e
		return true
	})
	if err != nil {
		return 0, true, err
	}
	if perr != nil {
		return 0, true, perr
	}
	if peeked == 0 {
		return 0, true, nil
	}
	// SIOCINQ (FIONREAD): how much may be spliced without blocking.
	_ = rc.Control(func(fd uintptr) {
		ready, perr = unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	})
	if perr != nil || ready < 1 {
		ready = 1 // the peeked byte is there
	}
	return ready, true, nil
}
