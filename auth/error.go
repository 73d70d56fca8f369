// SPDX-License-Identifier: Apache-2.0

package auth

import "errors"

// Kind classifies a failure: the case where no Status could be obtained.
type Kind uint8

const (
	// KindTemporary: a dependency is down, slow or overloaded; the same
	// request may succeed later. It is the kind of every unclassified error,
	// so that an unforeseen failure never reads as "wrong password".
	KindTemporary Kind = iota
	// KindInternal: misconfiguration or a bug; retrying will not help.
	KindInternal
)

// String names the kind for logs.
func (k Kind) String() string {
	if k == KindInternal {
		return "internal"
	}
	return "temporary"
}

// Error is a classified failure. Its text is for logs only and never holds a
// password; front ends put fixed texts on the wire.
type Error struct {
	Kind Kind
	Op   string // what failed: "passdb static", "director: place", "backend 127.0.0.11:143: dial"
	Err  error
}

func (e *Error) Error() string { return e.Op + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Temporary wraps err as a temporary failure of op.
func Temporary(op string, err error) error { return &Error{Kind: KindTemporary, Op: op, Err: err} }

// Internal wraps err as an internal failure (configuration or bug) of op.
func Internal(op string, err error) error { return &Error{Kind: KindInternal, Op: op, Err: err} }

// KindOf reports the kind of err. An error nobody classified is temporary.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindTemporary
}
