// SPDX-License-Identifier: Apache-2.0

// Package admin is the runtime admin surface of a gateway: two doors onto
// one implementation of the director's operations.
//
//   - Socket speaks Dovecot 2.3's director-admin protocol on a UNIX socket
//     (admin.socket), so that Debian's unmodified `doveadm director … -a
//     SOCKET` and poolmon work against maildirector.
//   - API is an HTTP JSON API under /api/v1/ (admin.listen), every request
//     authenticated by a bearer token (Tokens.Require, reusable for the
//     other handlers that listener serves).
//
// Both call the same service (service.go) over a small consumer-side
// interface, Ops, which DirectorOps implements with the director package's
// cluster-wide operations.
package admin
