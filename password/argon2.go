// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// argon2Params is one PHC string's parameters.
type argon2Params struct {
	variant string // "argon2i" or "argon2id"
	m, t, p uint32
	salt    []byte
	hash    []byte
}

// Argon2 defaults of Dovecot 2.3.19 (libsodium's interactive limits).
const (
	argon2iMemory, argon2iTime   = 32 * 1024, 4
	argon2idMemory, argon2idTime = 64 * 1024, 3
	argon2SaltLen, argon2KeyLen  = 16, 32
)

// verifyArgon2 is ARGON2I and ARGON2ID, which Dovecot both hands to
// libsodium's crypto_pwhash_str_verify: the PHC string's own "$argon2i$" or
// "$argon2id$" picks the variant, whichever scheme name was used.
func verifyArgon2(raw []byte, plain string, _ Params) (bool, error) {
	a, err := parseArgon2(string(raw))
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(a.key(plain, len(a.hash)), a.hash) == 1, nil
}

// parseArgon2 reads "$argon2id$v=19$m=65536,t=3,p=1$<salt>$<hash>" (salt
// and hash in unpadded base64, as libsodium writes them) and applies the
// work limits. Only version 19 (0x13) exists in libsodium and x/crypto.
func parseArgon2(s string) (argon2Params, error) {
	var a argon2Params
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || (f[1] != "argon2i" && f[1] != "argon2id") {
		return a, errf(ErrMalformed, "ARGON2", `not "$argon2id$v=19$m=M,t=T,p=P$salt$hash"`)
	}
	a.variant = f[1]
	if f[2] != "v=19" {
		if strings.HasPrefix(f[2], "v=") {
			return a, errf(ErrUnsupported, "ARGON2", "version %q", f[2])
		}
		return a, errf(ErrMalformed, "ARGON2", "no v=19")
	}
	var mtp [3]uint32
	fields := strings.Split(f[3], ",")
	for i, name := range []string{"m=", "t=", "p="} {
		var err error
		if len(fields) != 3 || !strings.HasPrefix(fields[i], name) {
			err = strconv.ErrSyntax
		} else {
			var v uint64
			v, err = strconv.ParseUint(fields[i][2:], 10, 32)
			mtp[i] = uint32(v)
		}
		if err != nil {
			return a, errf(ErrMalformed, "ARGON2", "bad parameters %q", f[3])
		}
	}
	m, t, p := mtp[0], mtp[1], mtp[2]
	if p < 1 || t < 1 || m < 8*p {
		return a, errf(ErrMalformed, "ARGON2", "parameters %q out of range", f[3])
	}
	if m > MaxArgon2Memory || uint64(m)*uint64(t) > MaxArgon2Work || p > MaxArgon2Lanes {
		return a, errf(ErrLimit, "ARGON2", "%q is over m=%d, m*t=%d, p=%d", f[3], MaxArgon2Memory, MaxArgon2Work, MaxArgon2Lanes)
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(f[4])
	hash, err2 := base64.RawStdEncoding.DecodeString(f[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(hash) < 16 || len(hash) > 1024 {
		return a, errf(ErrMalformed, "ARGON2", "bad salt or hash")
	}
	a.m, a.t, a.p, a.salt, a.hash = m, t, p, salt, hash
	return a, nil
}

func (a argon2Params) key(plain string, n int) []byte {
	if a.variant == "argon2i" {
		return argon2.Key([]byte(plain), a.salt, a.t, a.m, uint8(a.p), uint32(n))
	}
	return argon2.IDKey([]byte(plain), a.salt, a.t, a.m, uint8(a.p), uint32(n))
}

func (a argon2Params) String() string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$%s$v=19$m=%d,t=%d,p=%d$%s$%s", a.variant, a.m, a.t, a.p, b64.EncodeToString(a.salt), b64.EncodeToString(a.hash))
}

// generateArgon2i: libsodium refuses argon2i with t below 3.
func generateArgon2i(plain string, p Params) ([]byte, error) {
	return generateArgon2("argon2i", argon2iMemory, argon2iTime, 3, plain, p)
}

func generateArgon2id(plain string, p Params) ([]byte, error) {
	return generateArgon2("argon2id", argon2idMemory, argon2idTime, 1, plain, p)
}

func generateArgon2(variant string, m, t, minT uint32, plain string, p Params) ([]byte, error) {
	if p.Rounds != 0 {
		if p.Rounds < int(minT) || uint64(p.Rounds)*uint64(m) > MaxArgon2Work {
			return nil, errf(ErrInput, strings.ToUpper(variant), "t=%d not in %d..%d", p.Rounds, minT, MaxArgon2Work/m)
		}
		t = uint32(p.Rounds)
	}
	a := argon2Params{variant: variant, m: m, t: t, p: 1, salt: randomBytes(argon2SaltLen)}
	a.hash = a.key(plain, argon2KeyLen)
	return []byte(a.String()), nil
}
