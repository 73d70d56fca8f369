// SPDX-License-Identifier: Apache-2.0

// Package imap is the IMAP front end (RFC 9051, RFC 3501): the dialogue up
// to login (greeting, CAPABILITY, NOOP, LOGOUT, ID, STARTTLS, LOGIN,
// AUTHENTICATE with SASL-IR), the backend login that forwards the client's
// address with ID, and the rendering of failures as IMAP response codes.
// After login it hands both connections to gateway.Relay.
//
// It may import gateway, mechs and auth.
package imap
