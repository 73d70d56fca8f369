// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/subtle"
	"strconv"
	"strings"

	gcrypt "github.com/GehirnInc/crypt"
	"github.com/GehirnInc/crypt/md5_crypt"
	"github.com/GehirnInc/crypt/sha256_crypt"
	"github.com/GehirnInc/crypt/sha512_crypt"
)

// MD5-, SHA256- and SHA512-crypt come from github.com/GehirnInc/crypt: a
// small, BSD-licensed, dependency-free implementation of the published
// algorithms (FreeBSD MD5-crypt, Drepper's SHA-crypt) that passes every
// doveadm vector in testdata. We feed it only a salt specification we have
// parsed and bounded ourselves ("$6$rounds=N$salt", never the full stored
// hash: given "$5$rounds=N$short$hash" it would take "short$hash" as the
// salt) and compare its output with the stored value ourselves.

const (
	md5CryptSaltLen = 8  // what glibc and Dovecot generate
	shaCryptSaltLen = 16 // the most SHA-crypt uses
	shaCryptRounds  = 5000
)

// verifyCrypt is Dovecot's crypt_verify, behind CRYPT, DES-CRYPT,
// SHA256-CRYPT and SHA512-CRYPT alike: Dovecot hands the stored value to
// crypt(3), so the value's own "$id$" picks the method whatever the scheme
// name says ("{SHA256-CRYPT}$6$..." verifies as SHA-512). We do the methods
// libxcrypt and Dovecot generate; the others (yescrypt "$y$", scrypt "$7$",
// sha1crypt, SunMD5, BSDi "_", bigcrypt) are ErrUnsupported.
func verifyCrypt(raw []byte, plain string, p Params) (bool, error) {
	s := string(raw)
	switch {
	case s == "":
		// crypt(3) of an empty setting would match anything; Dovecot
		// treats it as a mismatch.
		return false, nil
	case strings.HasPrefix(s, "$2"):
		return verifyBcrypt(raw, plain, p)
	case strings.HasPrefix(s, "$1$"):
		return verifyMD5CryptString(s, plain)
	case strings.HasPrefix(s, "$5$"):
		return verifySHACrypt("SHA256-CRYPT", s, plain, sha256_crypt.New())
	case strings.HasPrefix(s, "$6$"):
		return verifySHACrypt("SHA512-CRYPT", s, plain, sha512_crypt.New())
	case isDESCrypt(s):
		return subtle.ConstantTimeCompare([]byte(desCrypt(plain, s[:2])), raw) == 1, nil
	case strings.HasPrefix(s, "$") || strings.HasPrefix(s, "_"):
		id, _, _ := strings.Cut(s[1:], "$")
		return false, errf(ErrUnsupported, "CRYPT", "crypt(3) method %.12q", s[:1]+id)
	}
	return false, errf(ErrMalformed, "CRYPT", "not a crypt(3) hash")
}

// verifyMD5Crypt is MD5-CRYPT. Dovecot computes its own MD5-crypt here and
// calls anything else a mismatch; we call it malformed, so that a scheme
// mix-up in the database is logged rather than looking like a wrong password.
func verifyMD5Crypt(raw []byte, plain string, _ Params) (bool, error) {
	return verifyMD5CryptString(string(raw), plain)
}

// verifyMD5 is the scheme Dovecot calls MD5: MD5-crypt when the value starts
// with "$1$", else a PLAIN-MD5 digest (hex or base64).
func verifyMD5(raw []byte, plain string, p Params) (bool, error) {
	if strings.HasPrefix(string(raw), "$1$") {
		return verifyMD5CryptString(string(raw), plain)
	}
	s, enc, _, err := lookup("PLAIN-MD5")
	if err != nil {
		return false, err
	}
	digest, err := s.decode(string(raw), enc, false)
	if err != nil {
		return false, errf(ErrMalformed, "MD5", "neither MD5-CRYPT nor PLAIN-MD5")
	}
	return s.check(digest, plain, p)
}

func verifyMD5CryptString(s, plain string) (bool, error) {
	rest, ok := strings.CutPrefix(s, "$1$")
	salt, _, found := strings.Cut(rest, "$")
	if !ok || !found {
		return false, errf(ErrMalformed, "MD5-CRYPT", `not "$1$salt$hash"`)
	}
	return cryptCompare("MD5-CRYPT", md5_crypt.New(), "$1$"+salt, s, plain)
}

// verifySHACrypt checks "$5$[rounds=N$]salt$hash" or the "$6$" form,
// refusing more than MaxSHACryptRounds rounds before any work.
func verifySHACrypt(name, s, plain string, c gcrypt.Crypter) (bool, error) {
	rest := s[3:]
	setting := s[:3]
	if r, ok := strings.CutPrefix(rest, "rounds="); ok {
		num, after, found := strings.Cut(r, "$")
		n, err := strconv.ParseUint(num, 10, 32)
		if !found || err != nil {
			return false, errf(ErrMalformed, name, "bad rounds=")
		}
		if n > MaxSHACryptRounds {
			return false, errf(ErrLimit, name, "rounds=%d is over %d", n, MaxSHACryptRounds)
		}
		setting += "rounds=" + num + "$"
		rest = after
	}
	salt, _, found := strings.Cut(rest, "$")
	if !found {
		return false, errf(ErrMalformed, name, "no salt$hash")
	}
	return cryptCompare(name, c, setting+salt, s, plain)
}

// cryptCompare runs c on setting and compares the whole result with stored,
// as crypt(3) users do.
func cryptCompare(name string, c gcrypt.Crypter, setting, stored, plain string) (bool, error) {
	got, err := c.Generate([]byte(plain), []byte(setting))
	if err != nil {
		return false, errf(ErrMalformed, name, "%v", err)
	}
	return subtle.ConstantTimeCompare([]byte(got), []byte(stored)) == 1, nil
}

func generateMD5Crypt(plain string, _ Params) ([]byte, error) {
	out, err := md5_crypt.New().Generate([]byte(plain), []byte("$1$"+randomString(md5CryptSaltLen, cryptAlphabet)))
	return []byte(out), err
}

func generateSHA256Crypt(plain string, p Params) ([]byte, error) {
	return generateSHACrypt("SHA256-CRYPT", "$5$", sha256_crypt.New(), plain, p)
}

func generateSHA512Crypt(plain string, p Params) ([]byte, error) {
	return generateSHACrypt("SHA512-CRYPT", "$6$", sha512_crypt.New(), plain, p)
}

// generateSHACrypt writes "rounds=N$" only when asked for rounds, like
// doveadm pw -r.
func generateSHACrypt(name, magic string, c gcrypt.Crypter, plain string, p Params) ([]byte, error) {
	setting := magic
	if p.Rounds != 0 {
		if p.Rounds < 1000 || p.Rounds > MaxSHACryptRounds {
			return nil, errf(ErrInput, name, "rounds %d not in 1000..%d", p.Rounds, MaxSHACryptRounds)
		}
		setting += "rounds=" + strconv.Itoa(p.Rounds) + "$"
	}
	out, err := c.Generate([]byte(plain), []byte(setting+randomString(shaCryptSaltLen, cryptAlphabet)))
	return []byte(out), err
}

func generateDESCrypt(plain string, _ Params) ([]byte, error) {
	return []byte(desCrypt(plain, randomString(2, cryptAlphabet))), nil
}
