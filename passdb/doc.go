// SPDX-License-Identifier: Apache-2.0

// Package passdb defines password databases (DB) and the Chain that consults
// them in order with Dovecot's result rules. Drivers live in sub-packages.
//
// It may import auth only.
package passdb
