// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/des"
	"encoding/binary"
	"testing"
)

// TestDESCryptMatchesCryptoDES: with salt "..", which perturbs nothing,
// crypt is crypto/des encrypting the zero block 25 times with the 7-bit key.
func TestDESCryptMatchesCryptoDES(t *testing.T) {
	for _, pw := range []string{"", "a", "password", "longer than eight", "pässwörd", "\xff\x80\x01"} {
		key := make([]byte, 8)
		for i := 0; i < 8 && i < len(pw); i++ {
			key[i] = pw[i] << 1
		}
		c, err := des.NewCipher(key)
		if err != nil {
			t.Fatal(err)
		}
		block := make([]byte, 8)
		for i := 0; i < 25; i++ {
			c.Encrypt(block, block)
		}
		v := binary.BigEndian.Uint64(block)
		want := []byte("..")
		for i := 0; i < 10; i++ {
			want = append(want, cryptAlphabet[v>>(58-6*i)&0x3f])
		}
		want = append(want, cryptAlphabet[v<<2&0x3f])
		if got := desCrypt(pw, ".."); got != string(want) {
			t.Errorf("desCrypt(%q) = %s, want %s", pw, got, want)
		}
	}
}

// TestDESCryptKnown: values from libxcrypt's crypt(3) (Debian 12), with
// salts that exercise the E-box swaps.
func TestDESCryptKnown(t *testing.T) {
	tests := []struct{ pw, hash string }{
		{"x", "CFh5JdBch11BY"},
		{"x", "X.kKeJxbSAM.o"},
		{"pass word", "TfoBZuTWSEldw"},
	}
	for _, tt := range tests {
		if got := desCrypt(tt.pw, tt.hash[:2]); got != tt.hash {
			t.Errorf("desCrypt(%q, %q) = %s, want %s", tt.pw, tt.hash[:2], got, tt.hash)
		}
	}
}
