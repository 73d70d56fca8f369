// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package gateway

import (
	"net"
	"syscall"
)

// poller is only implemented on Linux (epoll); elsewhere every direction
// of a relay is a goroutine blocked in Read with a small buffer.
type poller struct{}

func (*poller) add(*direction) (uint64, error)          { return 0, errNoPoller }
func (*poller) remove(uint64)                           {}
func (*poller) arm(*direction, uint64, bool) error      { return errNoPoller }
func watchable(net.Conn) (syscall.RawConn, bool)        { return nil, false }
func peekReady(syscall.RawConn) (ready bool, err error) { return false, errNoPoller }
func setRcvLowat(syscall.RawConn, int) error            { return errNoPoller }
