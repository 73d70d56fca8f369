// SPDX-License-Identifier: Apache-2.0

package password

// Work limits. A stored hash comes from a database the gateway trusts only so
// far: a row with bcrypt cost 31 or a billion PBKDF2 rounds would keep a core
// busy for hours per login attempt. Values above these limits are refused
// with ErrLimit (an internal failure, logged), never tried. Each limit is
// about one to two seconds of one core at the worst allowed setting
// (measured on a 2-core build machine) and well above what Dovecot and common
// tools generate by default; the defaults are given in brackets.
const (
	// MaxPlainLen bounds the password a client may present. Longer
	// passwords never match (Verify returns false, Generate fails): SHA-crypt
	// work grows with rounds times password length, so an attacker-chosen
	// length must be bounded even against a legitimate hash.
	MaxPlainLen = 512

	// MaxBcryptCost bounds BLF-CRYPT's cost (log2 rounds) [Dovecot 5].
	// Cost 15 is about 2 s; each step doubles it.
	MaxBcryptCost = 15

	// MaxSHACryptRounds bounds SHA256-CRYPT and SHA512-CRYPT "rounds=N"
	// [5000; passlib 535000/656000].
	MaxSHACryptRounds = 1_000_000

	// MaxPBKDF2Iterations bounds PBKDF2's rounds [5000] and SCRAM's iteration
	// count [4096].
	MaxPBKDF2Iterations = 2_000_000

	// MaxArgon2Memory bounds Argon2's m, in KiB (256 MiB) [ARGON2I 32 MiB,
	// ARGON2ID 64 MiB]. Memory is held for the whole verification, so a
	// caller running many at once should bound their concurrency.
	MaxArgon2Memory = 256 * 1024
	// MaxArgon2Work bounds m*t, in KiB passes (1 GiB: 256 MiB x 4, 64 MiB
	// x 16) [m=32768,t=4; m=65536,t=3].
	MaxArgon2Work = 1024 * 1024
	// MaxArgon2Lanes bounds Argon2's parallelism p [1].
	MaxArgon2Lanes = 16

	// MaxOTPSequence bounds OTP's sequence number (hash iterations) [1024];
	// Dovecot itself spends 20 s on a row saying 99999999.
	MaxOTPSequence = 100_000
)
