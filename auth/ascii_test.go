// SPDX-License-Identifier: Apache-2.0

package auth

import "testing"

// TestCaseIsASCIIOnly: %L and %U change A-Z / a-z and nothing else, as
// Dovecot's str_lcase / str_ucase do; every other byte, invalid UTF-8
// included, passes unchanged.
func TestCaseIsASCIIOnly(t *testing.T) {
	tests := []struct{ in, lower, upper string }{
		{"Alice@Example.COM", "alice@example.com", "ALICE@EXAMPLE.COM"},
		{"Ärger@Example.org", "Ärger@example.org", "ÄRGER@EXAMPLE.ORG"},
		{"ärger@example.org", "ärger@example.org", "äRGER@EXAMPLE.ORG"},
		{"ÖLÇÜ@EXAMPLE.ORG", "ÖlÇÜ@example.org", "ÖLÇÜ@EXAMPLE.ORG"},
		{"\u212Aelvin", "\u212Aelvin", "\u212AELVIN"}, // KELVIN SIGN: Unicode lowers it to "k"
		{"İstanbul", "İstanbul", "İSTANBUL"},          // Unicode: "i̇stanbul"
		{"straße", "straße", "STRAßE"},                // ß has no ASCII capital
		{"\xc4rger", "\xc4rger", "\xc4RGER"},          // Latin-1, not UTF-8: bytes kept
		{"", "", ""},
		{"already-lower", "already-lower", "ALREADY-LOWER"},
	}
	for _, tt := range tests {
		if got := LowerASCII(tt.in); got != tt.lower {
			t.Errorf("LowerASCII(%q) = %q, want %q", tt.in, got, tt.lower)
		}
		if got := UpperASCII(tt.in); got != tt.upper {
			t.Errorf("UpperASCII(%q) = %q, want %q", tt.in, got, tt.upper)
		}
		req := &Request{User: tt.in}
		if got, err := Expand("%Lu", req.Vars(), nil); err != nil || got != tt.lower {
			t.Errorf("Expand(%%Lu) of %q = %q, %v; want %q", tt.in, got, err, tt.lower)
		}
		if got, err := Expand("%Uu", req.Vars(), nil); err != nil || got != tt.upper {
			t.Errorf("Expand(%%Uu) of %q = %q, %v; want %q", tt.in, got, err, tt.upper)
		}
	}
}
