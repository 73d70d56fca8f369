// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net"

	"golang.org/x/sys/unix"
)

// waitReadable blocks, in the runtime's poller, until c has bytes to read
// or has ended, without reading anything and without holding a buffer or
// a splice pipe: an idle relayed session then costs its two sockets and
// two parked goroutines. It reports the bytes ready: 0 at end of stream,
// -1 when bytes are there but their count is not known (SIOCINQ says 0 at
// TCP's urgent mark, where splice would stall but read steps past). ok is
// false when c is not a socket this can watch.
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
		for {
			n, _, e := unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			switch e {
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // not yet: park in the poller
			}
			peeked, perr = n, e
			return true
		}
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
		return -1, true, nil
	}
	return ready, true, nil
}
