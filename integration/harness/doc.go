// SPDX-License-Identifier: Apache-2.0

// Package harness starts the real programs maildirector is tested against
// (Dovecot 2.3 backends, and the maildirector binary itself) as private
// child processes: own temporary directory, loopback addresses, free ports.
// The integration tests and the demo (integration/demo) share it.
//
// It may import anything; nothing but integration code imports it.
package harness
