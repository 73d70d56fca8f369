// SPDX-License-Identifier: Apache-2.0

package password

import (
	"errors"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

const (
	bcryptCost   = 5  // Dovecot 2.3's default for BLF-CRYPT and CRYPT
	bcryptMaxKey = 72 // bytes of the password bcrypt uses
)

// isBcrypt is Dovecot's test for a bcrypt value: "$2?$" and more.
func isBcrypt(s string) bool {
	return len(s) > 4 && s[0] == '$' && s[1] == '2' && s[3] == '$'
}

// verifyBcrypt is BLF-CRYPT. "$2a$", "$2b$" and "$2y$" are the same
// function for passwords of up to 72 bytes (longer ones are cut, as in
// Dovecot's crypt_blowfish). "$2x$" marks hashes made by the old
// crypt_blowfish sign-extension bug: identical for ASCII passwords, which we
// verify, different for 8-bit ones, which x/crypto cannot reproduce.
func verifyBcrypt(raw []byte, plain string, _ Params) (bool, error) {
	s := string(raw)
	if !isBcrypt(s) {
		return false, errf(ErrMalformed, "BLF-CRYPT", "not a bcrypt hash")
	}
	switch s[2] {
	case 'a', 'b', 'y':
	case 'x':
		if !isASCII(plain) {
			return false, errf(ErrUnsupported, "BLF-CRYPT", `"$2x$" hash with an 8-bit password`)
		}
	default:
		return false, errf(ErrMalformed, "BLF-CRYPT", "unknown variant %q", s[:4])
	}
	cost, err := bcrypt.Cost(raw)
	if err != nil {
		return false, errf(ErrMalformed, "BLF-CRYPT", "%v", err)
	}
	if cost > MaxBcryptCost {
		return false, errf(ErrLimit, "BLF-CRYPT", "cost %d is over %d", cost, MaxBcryptCost)
	}
	err = bcrypt.CompareHashAndPassword(raw, bcryptKey(plain))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return false, nil
	}
	return false, errf(ErrMalformed, "BLF-CRYPT", "%v", err)
}

// generateBcrypt writes "$2y$", like Dovecot 2.3, for the same hash x/crypto
// labels "$2a$".
func generateBcrypt(plain string, p Params) ([]byte, error) {
	cost := bcryptCost
	if p.Rounds != 0 {
		cost = p.Rounds
	}
	if cost < bcrypt.MinCost || cost > MaxBcryptCost {
		return nil, errf(ErrInput, "BLF-CRYPT", "cost %d not in %d..%d", cost, bcrypt.MinCost, MaxBcryptCost)
	}
	h, err := bcrypt.GenerateFromPassword(bcryptKey(plain), cost)
	if err != nil {
		return nil, err
	}
	return []byte("$2y$" + strings.TrimPrefix(string(h), "$2a$")), nil
}

func bcryptKey(plain string) []byte {
	if len(plain) > bcryptMaxKey {
		plain = plain[:bcryptMaxKey]
	}
	return []byte(plain)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
