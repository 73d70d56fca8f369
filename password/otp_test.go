// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/md5"
	"crypto/sha1"
	"encoding/hex"
	"hash"
	"strings"
	"testing"

	"golang.org/x/crypto/md4"
)

// TestOTPRFC2289: RFC 2289 Appendix C's vectors ("This is a test.", seed
// "TeSt").
func TestOTPRFC2289(t *testing.T) {
	tests := []struct {
		newHash func() hash.Hash
		seq     int
		want    string
	}{
		{md4.New, 0, "D1854218EBBB0B51"},
		{md4.New, 1, "63473EF01CD0B444"},
		{md5.New, 0, "9E876134D90499DD"},
		{md5.New, 1, "7965E05436F5029F"},
		{sha1.New, 0, "BB9E6AE1979D8FF4"},
		{sha1.New, 1, "63D936639734385B"},
	}
	for _, tt := range tests {
		got := strings.ToUpper(hex.EncodeToString(otpCompute(tt.newHash, "TeSt", "This is a test.", tt.seq)))
		if got != tt.want {
			t.Errorf("%T seq %d = %s, want %s", tt.newHash(), tt.seq, got, tt.want)
		}
	}
}
