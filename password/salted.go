// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/subtle"
	"hash"
)

// saltedSaltLen is the salt length Dovecot generates for SMD5 and SSHA*.
const saltedSaltLen = 4

// verifySalted checks SMD5, SSHA, SSHA256 and SSHA512: the raw value is
// digest(password + salt) followed by the salt, of any length but at least
// one byte.
func verifySalted(name string, newHash func() hash.Hash) func([]byte, string, Params) (bool, error) {
	return func(raw []byte, plain string, _ Params) (bool, error) {
		h := newHash()
		size := h.Size()
		if len(raw) <= size {
			return false, errf(ErrMalformed, name, "too short (%d bytes) to hold a digest and a salt", len(raw))
		}
		h.Write([]byte(plain))
		h.Write(raw[size:])
		return subtle.ConstantTimeCompare(h.Sum(nil), raw[:size]) == 1, nil
	}
}

func generateSalted(newHash func() hash.Hash) func(string, Params) ([]byte, error) {
	return func(plain string, _ Params) ([]byte, error) {
		salt := randomBytes(saltedSaltLen)
		h := newHash()
		h.Write([]byte(plain))
		h.Write(salt)
		return append(h.Sum(nil), salt...), nil
	}
}
