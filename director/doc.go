// SPDX-License-Identifier: Apache-2.0

// Package director places users on backends exactly as Dovecot 2.3's
// Director did (the MD5 vhost ring), keeps them there while they have
// sessions and for user_expire afterwards, and explains its choice.
// Assignments live behind the Store interface; store/memory serves a single
// gateway.
//
// It may import auth only.
package director
