// SPDX-License-Identifier: Apache-2.0

// Package mechs implements the server side of SASL mechanisms. A mechanism
// turns the client's responses into credentials; verifying them is the
// passdb chain's job, done by the caller.
//
// It may import auth and password (and emersion/go-sasl).
package mechs
