// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"strconv"
	"strings"
)

const (
	pbkdf2Rounds  = 5000 // Dovecot's default
	pbkdf2SaltLen = 16
)

// verifyPBKDF2 checks Dovecot's PBKDF2 format, "$1$<salt>$<rounds>$<hex>":
// PBKDF2-HMAC-SHA1 with the salt string's bytes as salt and a 20-byte key.
func verifyPBKDF2(raw []byte, plain string, _ Params) (bool, error) {
	rest, ok := strings.CutPrefix(string(raw), "$1$")
	fields := strings.Split(rest, "$")
	if !ok || len(fields) != 3 {
		return false, errf(ErrMalformed, "PBKDF2", `not "$1$salt$rounds$hash"`)
	}
	rounds, err := strconv.ParseUint(fields[1], 10, 32)
	if err != nil || rounds == 0 {
		return false, errf(ErrMalformed, "PBKDF2", "bad rounds %q", fields[1])
	}
	if rounds > MaxPBKDF2Iterations {
		return false, errf(ErrLimit, "PBKDF2", "rounds %d is over %d", rounds, MaxPBKDF2Iterations)
	}
	want, err := hex.DecodeString(fields[2])
	if err != nil || len(want) != sha1.Size {
		return false, errf(ErrMalformed, "PBKDF2", "hash is not 160 bits in hex")
	}
	got, err := pbkdf2.Key(sha1.New, plain, []byte(fields[0]), int(rounds), sha1.Size)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func generatePBKDF2(plain string, p Params) ([]byte, error) {
	rounds := pbkdf2Rounds
	if p.Rounds != 0 {
		rounds = p.Rounds
	}
	if rounds < 1 || rounds > MaxPBKDF2Iterations {
		return nil, errf(ErrInput, "PBKDF2", "rounds %d not in 1..%d", rounds, MaxPBKDF2Iterations)
	}
	salt := randomString(pbkdf2SaltLen, alnumAlphabet)
	key, err := pbkdf2.Key(sha1.New, plain, []byte(salt), rounds, sha1.Size)
	if err != nil {
		return nil, err
	}
	return []byte("$1$" + salt + "$" + strconv.Itoa(rounds) + "$" + hex.EncodeToString(key)), nil
}
