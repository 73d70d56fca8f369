// SPDX-License-Identifier: Apache-2.0

package password

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

// FuzzCredentials reads stored values the way the SASL mechanisms do:
// SCRAMKeys (SCRAM-SHA-1/256) and CRAMMD5Context. What they take has keys
// of the hash's size and an iteration count within the limits, written
// back (SCRAMCredentials.String) reads the same, and a CRAM-MD5 context
// made from a plaintext value computes HMAC-MD5 with that password.
func FuzzCredentials(f *testing.F) {
	for _, s := range []string{
		"{PLAIN}secret", "{CLEARTEXT}p\u00e4ssw\u00f6rd", "{CLEAR.HEX}736563726574", "secret",
		"{SCRAM-SHA-1}4096,c2FsdHNhbHRzYWx0c2FsdA==,AAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"{SCRAM-SHA-256}4096,c2FsdA==,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		"{SCRAM-SHA-1}4095,c2FsdA==,x,y", "{SCRAM-SHA-256}99999999999,,,", "{SCRAM-SHA-1}4096,!,!,!",
		"{CRAM-MD5}9186d855e11eba527a7a52ca82b313e180d62234f0acc9051b527243d41e2740",
		"{HMAC-MD5.BASE64}kYbYVeEeulJ6elLKgrMT4YDWIjTwrMkFG1JyQ9QeJ0A=", "{CRAM-MD5}00",
		"{SSHA}c2FsdHNhbHRzYWx0c2FsdHNhbHQ=", "$1$salt$hash", "{NOPE}x", "{PLAIN",
	} {
		f.Add(s, "")
	}
	f.Add("c2VjcmV0", "PLAIN.B64")
	f.Fuzz(func(t *testing.T, stored, def string) {
		p := Params{User: "user@realm", DefaultScheme: def}
		for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256"} {
			size := sha1.Size
			if mech == "SCRAM-SHA-256" {
				size = sha256.Size
			}
			c, err := SCRAMKeys(stored, mech, p)
			if err != nil {
				if !classified(err) {
					t.Fatalf("SCRAMKeys(%q, %s): unclassified %v", stored, mech, err)
				}
				continue
			}
			if len(c.StoredKey) != size || len(c.ServerKey) != size || c.Iterations < scramIterations || c.Iterations > MaxPBKDF2Iterations {
				t.Fatalf("SCRAMKeys(%q, %s) = %+v", stored, mech, c)
			}
			back, err := SCRAMKeys("{"+mech+"}"+c.String(), mech, Params{})
			if err != nil || back.Iterations != c.Iterations || !bytes.Equal(back.Salt, c.Salt) ||
				!bytes.Equal(back.StoredKey, c.StoredKey) || !bytes.Equal(back.ServerKey, c.ServerKey) {
				t.Fatalf("SCRAMKeys(%q, %s) = %+v, written %q, read back as %+v, %v", stored, mech, c, c.String(), back, err)
			}
		}
		ctx, err := CRAMMD5Context(stored, p)
		if err != nil {
			if !classified(err) {
				t.Fatalf("CRAMMD5Context(%q): unclassified %v", stored, err)
			}
			return
		}
		const challenge = "<1896.697170952@postoffice.reston.mci.net>"
		sum := ctx.Sum([]byte(challenge))
		if len(sum) != md5.Size {
			t.Fatalf("CRAMMD5Context(%q) sums %d bytes", stored, len(sum))
		}
		scheme, enc, data, err := Split(stored, def)
		if err == nil && enc == "" && (scheme == "PLAIN" || scheme == "CLEAR" || scheme == "CLEARTEXT") {
			m := hmac.New(md5.New, []byte(data))
			m.Write([]byte(challenge))
			if !bytes.Equal(sum, m.Sum(nil)) {
				t.Fatalf("CRAMMD5Context(%q) is not HMAC-MD5 with %q", stored, data)
			}
		}
	})
}

// generateRounds are the cheapest costs Generate accepts, so that the
// costly schemes can be fuzzed too (ARGON2 stays out: 32 MiB and more a
// hash, whatever the rounds).
var generateRounds = map[string]int{
	"BLF-CRYPT": 4, "CRYPT": 4, "SHA256-CRYPT": 1000, "SHA512-CRYPT": 1000, "PBKDF2": 1000,
	"SCRAM-SHA-1": scramIterations, "SCRAM-SHA-256": scramIterations,
}

// FuzzGenerate: for every scheme but ARGON2, a value Generate makes for
// any password verifies with that password and not with one differing in
// its first byte (or one byte longer, for the empty password, but for
// PLAIN-TRUNC); Generate refuses only with ErrInput.
func FuzzGenerate(f *testing.F) {
	schemes := Schemes()
	for i := range schemes {
		f.Add(uint8(i), "password")
	}
	f.Add(uint8(0), "p\u00e4ssw\u00f6rd \u20acuro \u5bc6\u7801")
	f.Add(uint8(0), "")
	f.Add(uint8(0), "nul\x00inside")
	f.Add(uint8(0), strings.Repeat("long", 20))
	f.Fuzz(func(t *testing.T, idx uint8, plain string) {
		scheme := schemes[int(idx)%len(schemes)]
		if strings.HasPrefix(scheme, "ARGON2") {
			return
		}
		p := Params{User: "user@realm", Rounds: generateRounds[scheme]}
		h, err := Generate(scheme, plain, p)
		if err != nil {
			if !errors.Is(err, ErrInput) {
				t.Fatalf("Generate(%s, %q): %v", scheme, plain, err)
			}
			return
		}
		if ok, err := Verify(h, plain, p); !ok || err != nil {
			t.Fatalf("Verify(%q, %q) = %v, %v", h, plain, ok, err)
		}
		other := plain + "x"
		if plain != "" {
			other = string(plain[0]^1) + plain[1:]
		}
		if scheme == "PLAIN-TRUNC" {
			// A generated value was not truncated: a longer password
			// that starts with it must not match either.
			if ok, _ := Verify(h, plain+"x", p); ok {
				t.Fatalf("Verify(%q, %q) = true: a generated PLAIN-TRUNC matches by prefix", h, plain+"x")
			}
		}
		if ok, err := Verify(h, other, p); ok || err != nil {
			t.Fatalf("Verify(%q, %q) = %v, %v for a value made for %q", h, other, ok, err, plain)
		}
	})
}
