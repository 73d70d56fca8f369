// SPDX-License-Identifier: Apache-2.0

package auth

// LowerASCII lower-cases the ASCII letters A-Z of s and leaves every other
// byte as it is: Dovecot's str_lcase (lib/strfuncs.c, i_tolower per byte),
// which %L, auth_username_format's default %Lu and the Director's
// director_username_hash all use. strings.ToLower is not the same: it
// lower-cases Unicode letters too ("Ä" to "ä", the KELVIN SIGN to an ASCII
// "k") and turns invalid UTF-8 into U+FFFD, so a name like
// "Ärger@example.org" would hash, and be looked up, differently from
// Dovecot 2.3.
func LowerASCII(s string) string {
	return mapASCII(s, 'A', 'Z', 'a'-'A')
}

// UpperASCII upper-cases the ASCII letters a-z of s only: Dovecot's
// str_ucase, behind %U.
func UpperASCII(s string) string {
	return mapASCII(s, 'a', 'z', -('a' - 'A'))
}

func mapASCII(s string, lo, hi byte, delta int) string {
	i := 0
	for i < len(s) && (s[i] < lo || s[i] > hi) {
		i++
	}
	if i == len(s) {
		return s // nothing to change: no copy
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; c >= lo && c <= hi {
			b[i] = byte(int(c) + delta)
		}
	}
	return string(b)
}
