// SPDX-License-Identifier: Apache-2.0

// Package sieve is the ManageSieve front end (RFC 5804): the dialogue up
// to login (the capability greeting, CAPABILITY, NOOP with its TAG echo,
// LOGOUT, STARTTLS, AUTHENTICATE with an initial response, and XCLIENT
// from trusted peers), the backend login that Pigeonhole's
// managesieve-proxy would do (STARTTLS, XCLIENT, AUTHENTICATE "PLAIN"),
// and the rendering of failures as ManageSieve response codes. After
// login it hands both connections to gateway.Relay.
//
// It may import gateway, mechs and auth.
package sieve
