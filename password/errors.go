// SPDX-License-Identifier: Apache-2.0

package password

import (
	"errors"
	"fmt"
)

// The error classes Verify, Generate and the credential accessors wrap, so
// that callers can tell a configuration problem from a broken database row
// with errors.Is. None of them means "wrong password".
var (
	// ErrUnknownScheme: the "{SCHEME}" prefix (or the default scheme) names
	// no scheme we know, or its ".ENC" suffix is not HEX, B64 or BASE64.
	ErrUnknownScheme = errors.New("password: unknown scheme")
	// ErrMalformed: the stored value is not valid for its scheme.
	ErrMalformed = errors.New("password: malformed stored password")
	// ErrLimit: the stored value asks for more work than limits.go allows.
	ErrLimit = errors.New("password: stored password exceeds work limits")
	// ErrUnsupported: a valid value we deliberately do not handle (a crypt(3)
	// method other than DES, MD5, SHA-256, SHA-512 and bcrypt, or a scheme
	// that cannot provide the credentials asked for).
	ErrUnsupported = errors.New("password: unsupported")
	// ErrInput: a Generate argument is unusable (missing user name for
	// DIGEST-MD5, rounds out of range, password too long).
	ErrInput = errors.New("password: invalid input")
)

// errf wraps one of the classes above with the scheme and a detail.
func errf(class error, scheme, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", class, scheme, fmt.Sprintf(format, args...))
}
