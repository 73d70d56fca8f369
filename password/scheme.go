// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"sort"
	"strings"

	"golang.org/x/crypto/md4"
)

// scheme is one row of Dovecot's password scheme table.
type scheme struct {
	name   string
	enc    dataEncoding // how the stored data encodes the raw value by default
	rawLen int          // fixed length of the raw value; 0 if it varies

	// hash computes the raw value, for schemes where it is a function of the
	// password alone (no salt): Verify compares, Generate returns it.
	hash func(plain string, p Params) ([]byte, error)

	// verify and generate are for the other schemes.
	verify   func(raw []byte, plain string, p Params) (bool, error)
	generate func(plain string, p Params) ([]byte, error)

	// costly marks schemes made slow (or memory-hungry) on purpose; see
	// Costly.
	costly bool
}

// table lists the schemes of Dovecot 2.3.19's `doveadm pw -l`. It is a
// function, not a package variable, so that nothing can change it; building
// it costs far less than any hash it leads to.
func table() []scheme {
	return []scheme{
		{name: "PLAIN", hash: plainHash},
		{name: "CLEAR", hash: plainHash},
		{name: "CLEARTEXT", hash: plainHash},
		{name: "PLAIN-TRUNC", verify: verifyPlainTrunc, generate: generatePlainTrunc},

		{name: "PLAIN-MD4", enc: encHex, rawLen: md4.Size, hash: digest(md4.New)},
		{name: "PLAIN-MD5", enc: encHex, rawLen: md5.Size, hash: digest(md5.New)},
		{name: "LDAP-MD5", enc: encBase64, rawLen: md5.Size, hash: digest(md5.New)},
		{name: "SHA", enc: encBase64, rawLen: sha1.Size, hash: digest(sha1.New)},
		{name: "SHA1", enc: encBase64, rawLen: sha1.Size, hash: digest(sha1.New)},
		{name: "SHA256", enc: encBase64, rawLen: sha256.Size, hash: digest(sha256.New)},
		{name: "SHA512", enc: encBase64, rawLen: sha512.Size, hash: digest(sha512.New)},
		{name: "DIGEST-MD5", enc: encHex, rawLen: md5.Size, hash: digestMD5Hash},

		{name: "SMD5", enc: encBase64, verify: verifySalted("SMD5", md5.New), generate: generateSalted(md5.New)},
		{name: "SSHA", enc: encBase64, verify: verifySalted("SSHA", sha1.New), generate: generateSalted(sha1.New)},
		{name: "SSHA256", enc: encBase64, verify: verifySalted("SSHA256", sha256.New), generate: generateSalted(sha256.New)},
		{name: "SSHA512", enc: encBase64, verify: verifySalted("SSHA512", sha512.New), generate: generateSalted(sha512.New)},

		{name: "MD5", verify: verifyMD5, generate: generateMD5Crypt},
		{name: "MD5-CRYPT", verify: verifyMD5Crypt, generate: generateMD5Crypt},
		{name: "SHA256-CRYPT", verify: verifyCrypt, generate: generateSHA256Crypt, costly: true},
		{name: "SHA512-CRYPT", verify: verifyCrypt, generate: generateSHA512Crypt, costly: true},
		{name: "DES-CRYPT", verify: verifyCrypt, generate: generateDESCrypt},
		{name: "BLF-CRYPT", verify: verifyBcrypt, generate: generateBcrypt, costly: true},
		{name: "CRYPT", verify: verifyCrypt, generate: generateBcrypt, costly: true},

		{name: "PBKDF2", verify: verifyPBKDF2, generate: generatePBKDF2, costly: true},
		{name: "ARGON2I", verify: verifyArgon2, generate: generateArgon2i, costly: true},
		{name: "ARGON2ID", verify: verifyArgon2, generate: generateArgon2id, costly: true},

		{name: "CRAM-MD5", enc: encHex, rawLen: cramMD5Len, hash: cramMD5Hash},
		{name: "HMAC-MD5", enc: encHex, rawLen: cramMD5Len, hash: cramMD5Hash},
		{name: "SCRAM-SHA-1", verify: verifySCRAM("SCRAM-SHA-1", sha1.New), generate: generateSCRAM("SCRAM-SHA-1", sha1.New), costly: true},
		{name: "SCRAM-SHA-256", verify: verifySCRAM("SCRAM-SHA-256", sha256.New), generate: generateSCRAM("SCRAM-SHA-256", sha256.New), costly: true},
		{name: "OTP", verify: verifyOTP, generate: generateOTP, costly: true},
	}
}

// Schemes returns the supported scheme names, sorted.
func Schemes() []string {
	t := table()
	names := make([]string, len(t))
	for i, s := range t {
		names[i] = s.name
	}
	sort.Strings(names)
	return names
}

// lookup resolves "NAME" or "NAME.ENC", case-insensitively, like Dovecot's
// password_scheme_lookup: an unknown suffix makes the whole name unknown.
// explicit reports whether a suffix chose the encoding.
func lookup(name string) (s scheme, enc dataEncoding, explicit bool, err error) {
	base, suffix, explicit := strings.Cut(name, ".")
	found := false
	for _, row := range table() {
		if strings.EqualFold(row.name, base) {
			s, found = row, true
			break
		}
	}
	if !found {
		return scheme{}, 0, false, errf(ErrUnknownScheme, name, "not one of %s", strings.Join(Schemes(), " "))
	}
	if !explicit {
		return s, s.enc, false, nil
	}
	switch strings.ToUpper(suffix) {
	case "HEX":
		return s, encHex, true, nil
	case "B64", "BASE64":
		return s, encBase64, true, nil
	}
	return scheme{}, 0, false, errf(ErrUnknownScheme, name, "encoding %q is not HEX, B64 or BASE64", suffix)
}

// check verifies plain against the decoded stored value.
func (s scheme) check(raw []byte, plain string, p Params) (bool, error) {
	if s.verify != nil {
		return s.verify(raw, plain, p)
	}
	want, err := s.hash(plain, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(want, raw) == 1, nil
}

// newValue returns a fresh raw value for plain.
func (s scheme) newValue(plain string, p Params) ([]byte, error) {
	if s.generate != nil {
		return s.generate(plain, p)
	}
	return s.hash(plain, p)
}
