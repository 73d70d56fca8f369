// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"fmt"
	"net"
	"os/user"
	"strconv"
	"syscall"
)

// peerName names the process at the other end of a UNIX socket (its user
// and pid, from SO_PEERCRED), for the records of who changed what.
func peerName(c *net.UnixConn) string {
	raw, err := c.SyscallConn()
	if err != nil {
		return ""
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil || cred == nil {
		return ""
	}
	name := strconv.FormatUint(uint64(cred.Uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	return fmt.Sprintf("%s(pid %d)", name, cred.Pid)
}
