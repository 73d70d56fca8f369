// SPDX-License-Identifier: Apache-2.0

package password

import (
	"errors"
	"slices"
	"testing"
)

// FuzzVerify: no stored value, password or default scheme makes Verify
// panic or run past the work limits; a match is never also an error; and
// an error is always one of the classified kinds. Seeds: testdata/fuzz.
func FuzzVerify(f *testing.F) {
	f.Add("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "password", "")
	f.Add("$1$salt$hash", "x", "CRYPT")
	f.Fuzz(func(t *testing.T, stored, plain, def string) {
		ok, err := Verify(stored, plain, Params{User: "user@realm", DefaultScheme: def})
		if ok && err != nil {
			t.Fatalf("Verify(%q, %q) = true with error %v", stored, plain, err)
		}
		if err != nil && !classified(err) {
			t.Fatalf("Verify(%q, %q): unclassified error %v", stored, plain, err)
		}
	})
}

// FuzzSplit: Split never panics and names only schemes we have.
func FuzzSplit(f *testing.F) {
	f.Add("{SHA512-CRYPT.b64}JDYk", "")
	f.Add("$1$a$b$c", "MD5")
	f.Fuzz(func(t *testing.T, stored, def string) {
		scheme, _, _, err := Split(stored, def)
		if err == nil && !slices.Contains(Schemes(), scheme) {
			t.Fatalf("Split(%q, %q) = unknown scheme %q", stored, def, scheme)
		}
		if err != nil && !errors.Is(err, ErrUnknownScheme) {
			t.Fatalf("Split(%q, %q): %v", stored, def, err)
		}
	})
}

func classified(err error) bool {
	for _, class := range []error{ErrUnknownScheme, ErrMalformed, ErrLimit, ErrUnsupported, ErrInput} {
		if errors.Is(err, class) {
			return true
		}
	}
	return false
}
