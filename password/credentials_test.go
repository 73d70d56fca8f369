// SPDX-License-Identifier: Apache-2.0

package password

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// TestCRAMMD5Context: the context from a stored CRAM-MD5 value (doveadm's)
// or from a plaintext one answers like HMAC-MD5 with the password, for short
// and for over-64-byte keys.
func TestCRAMMD5Context(t *testing.T) {
	challenge := []byte("<1896.697170952@postoffice.example.net>")
	long := strings.Repeat("k", 100)
	tests := []struct{ stored, pw string }{
		{"{CRAM-MD5}ee7caf39bc55ee6231951ebd3832c90a64bbec99612a5f279453f4b6eeff6769", "pass word"},
		{"{HMAC-MD5}ee7caf39bc55ee6231951ebd3832c90a64bbec99612a5f279453f4b6eeff6769", "pass word"},
		{"{PLAIN}pass word", "pass word"},
		{"pass word", "pass word"},
		{"{CLEAR.b64}cGFzcyB3b3Jk", "pass word"},
		{"{PLAIN}" + long, long},
	}
	for _, tt := range tests {
		c, err := CRAMMD5Context(tt.stored, Params{})
		if err != nil {
			t.Fatalf("CRAMMD5Context(%q): %v", tt.stored, err)
		}
		m := hmac.New(md5.New, []byte(tt.pw))
		m.Write(challenge)
		if got := c.Sum(challenge); !bytes.Equal(got, m.Sum(nil)) {
			t.Errorf("%q: Sum = %x, want %x", tt.stored, got, m.Sum(nil))
		}
	}
	// RFC 2195 section 2's example: user tim, password tanstaaftanstaaf.
	c, _ := CRAMMD5Context("{PLAIN}tanstaaftanstaaf", Params{})
	if got := c.Sum([]byte("<1896.697170952@postoffice.reston.mci.net>")); hex.EncodeToString(got) != "b913a602c7eda7a495b4e6e7334d3890" {
		t.Errorf("RFC 2195 example: %x", got)
	}
	for _, stored := range []string{"{SSHA}s8t7idCCEEPVCSHr2jVYqRDP+6tHTXVF", "{SHA512-CRYPT}$6$x$y"} {
		if _, err := CRAMMD5Context(stored, Params{}); !errors.Is(err, ErrUnsupported) {
			t.Errorf("CRAMMD5Context(%q): %v, want ErrUnsupported", stored, err)
		}
	}
	if _, err := CRAMMD5Context("{CRAM-MD5}zz", Params{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("malformed: %v", err)
	}
}

// TestSCRAMKeys: stored SCRAM values give their keys; plaintext derives keys
// that verify; other schemes cannot.
func TestSCRAMKeys(t *testing.T) {
	const stored = "{SCRAM-SHA-1}4096,2zM8A094aYNGVU34IFCSqw==,tYAdyArx5X3pOY/FcoZCfKTcetU=,0N2lWhbwogKR1LWquMaBPz55208=" // doveadm, "pass word"
	c, err := SCRAMKeys(stored, "scram-sha-1", Params{})
	if err != nil || c.Iterations != 4096 || len(c.Salt) != 16 || len(c.StoredKey) != 20 || len(c.ServerKey) != 20 {
		t.Fatalf("SCRAMKeys = %+v, %v", c, err)
	}
	if "{SCRAM-SHA-1}"+c.String() != stored {
		t.Errorf("String = %q, want %q", c.String(), stored)
	}
	for _, mech := range []string{"SCRAM-SHA-1", "SCRAM-SHA-256"} {
		c, err := SCRAMKeys("{PLAIN}pass word", mech, Params{})
		if err != nil {
			t.Fatalf("%s from PLAIN: %v", mech, err)
		}
		if ok, err := Verify("{"+mech+"}"+c.String(), "pass word", Params{}); !ok || err != nil {
			t.Errorf("%s derived keys do not verify: %v, %v", mech, ok, err)
		}
	}
	if _, err := SCRAMKeys(stored, "SCRAM-SHA-256", Params{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SHA-1 value for SHA-256: %v, want ErrUnsupported", err)
	}
	if _, err := SCRAMKeys("{SSHA}s8t7idCCEEPVCSHr2jVYqRDP+6tHTXVF", "SCRAM-SHA-1", Params{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("SSHA: %v, want ErrUnsupported", err)
	}
	if _, err := SCRAMKeys(stored, "SCRAM-SHA-512", Params{}); !errors.Is(err, ErrUnknownScheme) {
		t.Errorf("SCRAM-SHA-512: %v, want ErrUnknownScheme", err)
	}
}
