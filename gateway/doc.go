// SPDX-License-Identifier: Apache-2.0

// Package gateway holds what every protocol front end shares: listeners and
// TLS, the client connection with its pre-login bounds, the login pipeline
// (passdb chain, then the director or a pinned host, then the backend
// dial), the relay and the registry of relayed sessions. Protocol
// dialogues live in the sub-packages (gateway/imap, ...).
//
// It may import auth, passdb, director and mechs.
package gateway
