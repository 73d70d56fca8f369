// SPDX-License-Identifier: Apache-2.0

// Package lmtp is the LMTP front end (RFC 2033): for each RCPT TO it looks
// the user up (passdb without password, or userdb), routes it like a
// login (pinned host or the director), and passes the RCPT to that
// backend, answering with the backend's own reply; DATA is streamed to
// every backend at once, and every recipient gets its own backend's
// verdict, in RCPT order. A recipient never hears 250 before its backend
// said 250.
//
// The server and the backend client are written here rather than taken
// from emersion/go-smtp: its server has no XCLIENT (needed to receive the
// proxy TTL and a front MTA's client address) and no per-connection entry
// point, and its client offers neither XCLIENT nor a way to stream one
// message to several servers at once; the protocol before DATA is small.
//
// It may import gateway and auth.
package lmtp
