// SPDX-License-Identifier: Apache-2.0

package gateway

import (
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// sendOOB writes before, then urgent as TCP urgent data, then after.
func sendOOB(t *testing.T, c net.Conn, before, urgent, after string) {
	t.Helper()
	rc, err := c.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Write(func(fd uintptr) bool {
		if serr = unix.Send(int(fd), []byte(before), 0); serr == nil {
			if serr = unix.Send(int(fd), []byte(urgent), unix.MSG_OOB); serr == nil {
				serr = unix.Send(int(fd), []byte(after), 0)
			}
		}
		return true
	})
	if serr != nil {
		t.Fatal(serr)
	}
}

// pollerOpen reports whether p's epoll set is open.
// lingerNow runs the unused set's close without waiting for its timer.
func lingerNow(p *poller) { p.closeUnused() }

func pollerOpen(p *poller) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.file != nil
}
