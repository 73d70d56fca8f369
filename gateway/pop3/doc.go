// SPDX-License-Identifier: Apache-2.0

// Package pop3 is the POP3 front end (RFC 1939): the dialogue up to login
// (greeting, CAPA of RFC 2449, STLS of RFC 2595, USER/PASS, AUTH of RFC
// 5034, XCLIENT from trusted peers, QUIT), the backend login in the manner
// of Dovecot's pop3-proxy (STLS when starttls=yes, XCLIENT to forward the
// client's address, USER/PASS or AUTH PLAIN for master users) and the
// rendering of failures as POP3 response codes (RFC 2449, RFC 3206).
// After login it hands both connections to gateway.Relay.
//
// It may import gateway, mechs and auth.
package pop3
