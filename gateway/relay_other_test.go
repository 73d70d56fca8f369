// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package gateway

import (
	"net"
	"testing"
)

func sendOOB(t *testing.T, _ net.Conn, _, _, _ string) {
	t.Skip("urgent data is sent with Linux calls here")
}

func pollerOpen(*poller) bool { return false }

func lingerNow(*poller) {}
