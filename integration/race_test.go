// SPDX-License-Identifier: Apache-2.0

//go:build race

package integration

// raceEnabled: under `go test -race` the gateway binary is built with the
// race detector too, so that the integration tests hunt for data races in
// the real server.
func init() { raceEnabled = true }
