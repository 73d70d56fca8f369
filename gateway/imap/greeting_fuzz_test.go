// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"strings"
	"testing"
)

// FuzzParseGreeting reads backend greetings: only "* OK" is taken, and
// the capabilities it yields are upper-case atoms from inside its
// [CAPABILITY ...] code.
func FuzzParseGreeting(f *testing.F) {
	for _, s := range []string{
		"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ AUTH=PLAIN] Dovecot ready.",
		"* OK Dovecot ready.", "* PREAUTH [CAPABILITY IMAP4rev1] logged in", "* BYE go away",
		"* OK [CAPABILITY IMAP4rev1", "* OK [CAPABILITY ] empty", "* OK [ALERT] [CAPABILITY a b] late", "* OKAY",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		caps, err := parseGreeting([]byte(line))
		if err != nil {
			return
		}
		if !strings.HasPrefix(line, "* OK") {
			t.Fatalf("greeting %q taken", line)
		}
		if caps != nil && !strings.Contains(line, "[CAPABILITY ") {
			t.Fatalf("greeting %q gave capabilities %v", line, caps)
		}
		for c := range caps {
			if c == "" || c != strings.ToUpper(c) || strings.ContainsAny(c, " \t\r\n]") || !strings.Contains(strings.ToUpper(line), c) {
				t.Fatalf("greeting %q gave capability %q", line, c)
			}
		}
	})
}
