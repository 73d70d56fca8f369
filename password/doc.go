// SPDX-License-Identifier: Apache-2.0

// Package password verifies and generates passwords in Dovecot 2.3's password
// schemes ("{SHA512-CRYPT}$6$...", "{SSHA}...", "{CRAM-MD5}..."), so that a
// passdb can check a client's password against the value Dovecot would have
// checked, byte for byte.
//
// It owns: the scheme table, the "{SCHEME.ENC}" prefix and encoding rules
// (including Dovecot's guessing of hex or base64 for fixed-length digests and
// its rule that a bare "$1$..." is MD5-CRYPT), every scheme's verify and
// generate, the work limits that keep a hostile stored hash from tying up the
// gateway (limits.go), and the credential accessors that SASL mechanisms need
// without a plaintext password (CRAMMD5Context, SCRAMKeys).
//
// Verify never says "wrong password" by accident: (false, nil) is a
// mismatch; an error means the stored value could not be checked (unknown
// scheme, malformed data, over a limit, unsupported crypt(3) method) and is
// an internal failure for the caller. Empty passwords are verified like any
// other; refusing them is the passdb's job.
//
// It may import the standard library, golang.org/x/crypto (bcrypt, argon2,
// md4) and github.com/GehirnInc/crypt (MD5-, SHA256- and SHA512-crypt); no
// package of ours.
package password
