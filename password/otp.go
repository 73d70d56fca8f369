// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"

	"golang.org/x/crypto/md4"
)

const (
	otpSequence = 1024 // what doveadm generates
	otpSeedLen  = 16   // hex digits of seed doveadm generates (RFC 2289 allows 1-16 alphanumerics)
)

// verifyOTP checks Dovecot's OTP value, "<algo> <sequence> <seed> <hash>":
// the RFC 2289 one-time password number <sequence> for the pass phrase, as
// 16 hex digits. Dovecot's parser wants the algorithm (md4, md5, sha1) in
// lower case; the seed is case-insensitive (RFC 2289 section 6).
func verifyOTP(raw []byte, plain string, _ Params) (bool, error) {
	f := strings.Split(string(raw), " ")
	if len(f) != 4 {
		return false, errf(ErrMalformed, "OTP", `not "algo sequence seed hash"`)
	}
	newHash := otpHash(f[0])
	seq, err := strconv.ParseUint(f[1], 10, 32)
	want, herr := hex.DecodeString(f[3])
	if newHash == nil || err != nil || !validOTPSeed(f[2]) || herr != nil || len(want) != 8 {
		return false, errf(ErrMalformed, "OTP", `not "algo sequence seed hash"`)
	}
	if seq > MaxOTPSequence {
		return false, errf(ErrLimit, "OTP", "sequence %d is over %d", seq, MaxOTPSequence)
	}
	got := otpCompute(newHash, f[2], plain, int(seq))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func generateOTP(plain string, _ Params) ([]byte, error) {
	seed := hex.EncodeToString(randomBytes(otpSeedLen / 2))
	sum := otpCompute(sha1.New, seed, plain, otpSequence)
	return []byte("sha1 " + strconv.Itoa(otpSequence) + " " + seed + " " + hex.EncodeToString(sum)), nil
}

func otpHash(algo string) func() hash.Hash {
	switch algo {
	case "md4":
		return md4.New
	case "md5":
		return md5.New
	case "sha1":
		return sha1.New
	}
	return nil
}

func validOTPSeed(seed string) bool {
	if len(seed) < 1 || len(seed) > 16 {
		return false
	}
	for i := 0; i < len(seed); i++ {
		c := seed[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// otpCompute is RFC 2289 section 6: fold hash(lower(seed) + pass phrase) to
// 64 bits, then hash and fold seq more times.
func otpCompute(newHash func() hash.Hash, seed, plain string, seq int) []byte {
	h := newHash()
	h.Write([]byte(strings.ToLower(seed) + plain))
	s := otpFold(h.Sum(nil))
	for i := 0; i < seq; i++ {
		h.Reset()
		h.Write(s)
		s = otpFold(h.Sum(nil))
	}
	return s
}

// otpFold XORs a digest down to 64 bits. For MD4 and MD5, the two halves.
// For SHA-1, RFC 2289 Appendix A XORs its five 32-bit words as a
// little-endian machine holds them (w0^w2^w4, w1^w3) and outputs their
// bytes in that order, so each word comes out byte-reversed.
func otpFold(d []byte) []byte {
	out := make([]byte, 8)
	for i := range out {
		out[i] = d[i] ^ d[i+8]
		if len(d) == sha1.Size && i < 4 {
			out[i] ^= d[i+16]
		}
	}
	if len(d) == sha1.Size {
		for w := 0; w < 8; w += 4 {
			out[w], out[w+1], out[w+2], out[w+3] = out[w+3], out[w+2], out[w+1], out[w]
		}
	}
	return out
}
