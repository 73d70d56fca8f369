// SPDX-License-Identifier: Apache-2.0

// Package auth is the shared vocabulary of maildirector: who is logging in
// (Request), what a database concluded (Result, Status, Fields) and how a
// failure is classified (Error, Kind). It also expands Dovecot's %variables.
//
// It imports only the standard library; every other package may import it.
package auth
