// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package gateway

import "net"

// waitReadable is only implemented on Linux; elsewhere the relay blocks in
// Read with its buffer, as io.Copy does.
func waitReadable(net.Conn) (int, bool, error) { return 0, false, nil }
