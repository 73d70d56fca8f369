// SPDX-License-Identifier: Apache-2.0

//go:build !linux

package gateway

import "net"

// established cannot look at the TCP state here: a connection the backend
// closed shows as a failed login, which Pipeline.Login retries on a new
// connection.
func established(net.Conn) bool { return true }
