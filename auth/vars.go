// SPDX-License-Identifier: Apache-2.0

package auth

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Lookup resolves one variable by its long name ("user", "rip",
// "ldap:mailHost:default"). ok is false for a name it does not know.
type Lookup func(name string) (value string, ok bool)

// shortVars maps Dovecot 2.3's one-letter variables to their long names
// (doc: configuration_manual/config_file/config_variables).
var shortVars = map[byte]string{
	'u': "user", 'n': "username", 'd': "domain", 's': "service",
	'l': "lip", 'r': "rip", 'a': "lport", 'b': "rport",
	'm': "mech", 'c': "secured", 'w': "password", 'k': "cert", 'p': "pid",
	// %$ is the value of the attribute an LDAP attrs item maps (Dovecot's
	// "attr=field=template"); only that lookup knows it.
	'$': "$",
}

// Expand replaces Dovecot %variables in tmpl: %u, %{user}, %{name:default}
// handled by look, with the modifiers L (lower case) and U (upper case),
// which, as in Dovecot, change ASCII letters only (LowerASCII), and
// Dovecot's offset/width ("%1.2u", "%-3n" counts from the end). escape, when
// not nil, is applied to every substituted value (LDAP filter escaping,
// for example) but never to the template's own text. "%%" is a literal %.
func Expand(tmpl string, look Lookup, escape func(string) string) (string, error) {
	if !strings.Contains(tmpl, "%") {
		return tmpl, nil
	}
	var b strings.Builder
	for i := 0; i < len(tmpl); i++ {
		c := tmpl[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(tmpl) {
			return "", fmt.Errorf("%q: %% at end of template", tmpl)
		}
		if tmpl[i] == '%' {
			b.WriteByte('%')
			continue
		}
		v, next, err := expandOne(tmpl, i, look)
		if err != nil {
			return "", err
		}
		if escape != nil {
			v = escape(v)
		}
		b.WriteString(v)
		i = next - 1
	}
	return b.String(), nil
}

// expandOne expands the variable starting at tmpl[i] (just after '%') and
// returns its value and the index after it.
func expandOne(tmpl string, i int, look Lookup) (string, int, error) {
	var lower, upper bool
	offset, width, haveWidth := 0, 0, false
	// modifiers
	for i < len(tmpl) && (tmpl[i] == 'L' || tmpl[i] == 'U') {
		lower, upper = tmpl[i] == 'L', tmpl[i] == 'U'
		i++
	}
	// [-]offset[.width] or width
	if i < len(tmpl) && (tmpl[i] == '-' || isDigit(tmpl[i])) {
		neg := tmpl[i] == '-'
		if neg {
			i++
		}
		j := i
		for j < len(tmpl) && isDigit(tmpl[j]) {
			j++
		}
		n, _ := strconv.Atoi(tmpl[i:j])
		i = j
		if i < len(tmpl) && tmpl[i] == '.' {
			offset = n
			if neg {
				offset = -n
			}
			i++
			j = i
			for j < len(tmpl) && isDigit(tmpl[j]) {
				j++
			}
			width, _ = strconv.Atoi(tmpl[i:j])
			haveWidth = true
			i = j
		} else {
			width, haveWidth = n, true
			if neg {
				offset, haveWidth = -n, false
			}
		}
	}
	if i >= len(tmpl) {
		return "", 0, fmt.Errorf("%q: incomplete variable", tmpl)
	}
	var name string
	if tmpl[i] == '{' {
		end := strings.IndexByte(tmpl[i:], '}')
		if end < 0 {
			return "", 0, fmt.Errorf("%q: missing '}'", tmpl)
		}
		name = tmpl[i+1 : i+end]
		i += end + 1
	} else {
		long, ok := shortVars[tmpl[i]]
		if !ok {
			return "", 0, fmt.Errorf("%q: unknown variable %%%c", tmpl, tmpl[i])
		}
		name = long
		i++
	}
	v, ok := look(name)
	if !ok {
		return "", 0, fmt.Errorf("%q: unknown variable %%{%s}", tmpl, name)
	}
	v = substr(v, offset, width, haveWidth)
	switch {
	case lower:
		v = LowerASCII(v)
	case upper:
		v = UpperASCII(v)
	}
	return v, i, nil
}

func substr(v string, offset, width int, haveWidth bool) string {
	if offset < 0 {
		offset = len(v) + offset
		if offset < 0 {
			offset = 0
		}
	}
	if offset > len(v) {
		return ""
	}
	v = v[offset:]
	if haveWidth && width < len(v) {
		v = v[:width]
	}
	return v
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// Vars returns the Lookup of the request-level variables: user, username,
// domain, service, lip, rip, lport, rport, mech, secured, session,
// orig_user. Passwords are deliberately not available.
func (r *Request) Vars() Lookup {
	return func(name string) (string, bool) {
		switch name {
		case "user", "orig_user":
			return r.User, true
		case "username":
			return r.Username(), true
		case "domain":
			return r.Domain(), true
		case "service":
			return r.Service, true
		case "lip":
			return addrString(r.Local.Addr().IsValid(), r.Local.Addr().String()), true
		case "rip", "real_rip":
			return addrString(r.Remote.Addr().IsValid(), r.Remote.Addr().String()), true
		case "lport":
			return portString(r.Local.Port()), true
		case "rport", "real_rport":
			return portString(r.Remote.Port()), true
		case "mech":
			return r.Mech, true
		case "secured":
			if r.Secured {
				return "secured", true
			}
			return "", true
		case "session":
			return r.Session, true
		case "pid":
			// The auth client's process: the gateway itself.
			return strconv.Itoa(os.Getpid()), true
		}
		return "", false
	}
}

func addrString(ok bool, s string) string {
	if !ok {
		return ""
	}
	return s
}

func portString(p uint16) string {
	if p == 0 {
		return ""
	}
	return strconv.Itoa(int(p))
}
