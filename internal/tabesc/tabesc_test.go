// SPDX-License-Identifier: Apache-2.0

package tabesc

import "testing"

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"", "plain", "a\tb", "\x00\x01\t\r\n", "end\x01", "x\x01yz"} {
		if got := Unescape(Escape(s)); got != s {
			t.Errorf("Unescape(Escape(%q)) = %q", s, got)
		}
	}
	// Dovecot's reading of what it never writes.
	for in, want := range map[string]string{"a\x01": "a", "\x01x": "x", "\x01t\x01n": "\t\n"} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add("a\tb\x01c")
	f.Fuzz(func(t *testing.T, s string) {
		e := Escape(s)
		for i := 0; i < len(e); i++ {
			if c := e[i]; c == 0 || c == '\t' || c == '\r' || c == '\n' {
				t.Fatalf("Escape(%q) = %q holds %q", s, e, c)
			}
		}
		if got := Unescape(e); got != s {
			t.Fatalf("round trip of %q: %q", s, got)
		}
	})
}
