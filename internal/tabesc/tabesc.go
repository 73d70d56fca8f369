// SPDX-License-Identifier: Apache-2.0

// Package tabesc is Dovecot's tab escaping, which its line protocols
// (director-admin, doveadm-server, auth) share: a field may hold any byte,
// and NUL, \001, tab, CR and LF travel as \001 followed by 0, 1, t, r, n.
package tabesc

import "strings"

// Escape escapes a field (Dovecot's str_append_tabescaped).
func Escape(s string) string {
	if !strings.ContainsAny(s, "\x00\x01\t\r\n") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case 0:
			b.WriteString("\x010")
		case 1:
			b.WriteString("\x011")
		case '\t':
			b.WriteString("\x01t")
		case '\r':
			b.WriteString("\x01r")
		case '\n':
			b.WriteString("\x01n")
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// Unescape undoes Escape as Dovecot's str_tabunescape reads it: \001
// before any other byte stands for that byte, and a \001 at the end is
// dropped.
func Unescape(s string) string {
	i := strings.IndexByte(s, 1)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(s[:i])
	for ; i < len(s); i++ {
		if s[i] != 1 {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			break
		}
		switch s[i] {
		case '0':
			b.WriteByte(0)
		case '1':
			b.WriteByte(1)
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'n':
			b.WriteByte('\n')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
