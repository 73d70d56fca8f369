// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/maildirector/maildirector/internal/tabesc"
)

// Dovecot 2.3's director-admin protocol (src/director/doveadm-connection.c,
// the server; src/doveadm/doveadm-director.c, the client): after a VERSION
// line each way, one command per line, its arguments separated by tabs and
// tab-escaped; a reply is one line (OK, NOTFOUND, TRYAGAIN or an error
// text) or, for lists, lines ended by an empty line. A command the server
// cannot parse is logged and the connection closed, without a reply.

// handshake is the VERSION line both sides send first.
const handshake = "VERSION\tdirector-doveadm\t1\t0\n"

// maxLine bounds a command line (Dovecot reads them into 1 KiB).
const maxLine = 8192

// TabUnescape undoes Dovecot's tab escaping (str_tabunescape): \001
// followed by 0, 1, t, r or n stands for NUL, \001, tab, CR or LF; before
// any other byte it stands for that byte; at the end it is dropped.
func TabUnescape(s string) string { return tabesc.Unescape(s) }

// tabEscape is Dovecot's str_tabescape.
func tabEscape(s string) string { return tabesc.Escape(s) }

// splitTabEscaped is Dovecot's t_strsplit_tabescaped: an empty line has
// no fields at all.
func splitTabEscaped(line string) []string {
	if line == "" {
		return nil
	}
	fields := strings.Split(line, "\t")
	for i, f := range fields {
		fields[i] = TabUnescape(f)
	}
	return fields
}

// request is one parsed command.
type request struct {
	verb string
	// ip is a backend's (or director's) address, as the ring hashes it;
	// "" where the command allows none (HOST-FLUSH of all hosts).
	ip string
	// tag from HOST-SET / HOST-UPDATE's ip@tag, or USER-LOOKUP's tag.
	tag string
	// vhosts is HOST-SET / HOST-UPDATE's count; -1 when not given.
	vhosts int64
	// user is a user name or a decimal hash (USER-LOOKUP, USER-MOVE),
	// a user name (USER-KICK), or USER-KICK-ALT's value.
	user string
	// field is USER-KICK-ALT's passdb field.
	field string
	// nowait: USER-KICK[-ALT]'s nowait flag.
	nowait bool
	// maxParallel is HOST-RESET-USERS's limit (0: not given).
	maxParallel uint64
	// port is DIRECTOR-ADD / DIRECTOR-REMOVE's (0: not given).
	port uint64
}

// errEmptyCommand and errUnknownCommand: how Dovecot's server names them
// in its log before it closes the connection.
var (
	errEmptyCommand   = errors.New("doveadm sent empty command line")
	errUnknownCommand = errors.New("doveadm sent unknown command")
)

func invalid(verb string) error {
	return fmt.Errorf("doveadm sent invalid %s parameters", verb)
}

// strToUint is Dovecot's str_to_uint: decimal digits only, within 32 bits.
func strToUint(s string) (uint64, bool) {
	if s == "" || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return n, err == nil
}

func arg(args []string, i int) (string, bool) {
	if i < len(args) {
		return args[i], true
	}
	return "", false
}

// parseRequest parses a command line, with Dovecot's rules for each
// command's arguments. An error means the server must close the
// connection without a reply, as Dovecot's does.
func parseRequest(line string) (request, error) {
	if strings.IndexByte(line, 0) >= 0 {
		return request{}, errors.New("doveadm sent a NUL byte")
	}
	fields := splitTabEscaped(line)
	if len(fields) == 0 {
		return request{}, errEmptyCommand
	}
	r := request{verb: fields[0], vhosts: -1}
	args := fields[1:]
	a0, has0 := arg(args, 0)
	a1, has1 := arg(args, 1)
	var err error
	switch r.verb {
	case "HOST-LIST", "HOST-LIST-REMOVED", "DIRECTOR-LIST":
	case "RELOAD": // maildirector's own: maildirector reload
	case "DIRECTOR-ADD", "DIRECTOR-REMOVE":
		if !has0 {
			return r, invalid(r.verb)
		}
		if r.ip, err = parseIP(a0); err != nil {
			return r, invalid(r.verb)
		}
		if has1 {
			p, ok := strToUint(a1)
			if !ok || p == 0 || p > 65535 {
				return r, invalid(r.verb)
			}
			r.port = p
		}
	case "HOST-SET", "HOST-UPDATE":
		if !has0 {
			return r, invalid(r.verb)
		}
		ip, tag, _ := strings.Cut(a0, "@")
		r.tag = tag
		if r.ip, err = parseIP(ip); err != nil {
			return r, invalid(r.verb)
		}
		if has1 {
			n, ok := strToUint(a1)
			if !ok {
				return r, invalid(r.verb)
			}
			r.vhosts = int64(n)
		} else if r.verb == "HOST-UPDATE" {
			return r, invalid(r.verb)
		}
	case "HOST-UP", "HOST-DOWN", "HOST-REMOVE":
		if !has0 {
			return r, invalid(r.verb)
		}
		if r.ip, err = parseIP(a0); err != nil {
			return r, invalid(r.verb)
		}
	case "HOST-FLUSH", "USER-LIST":
		if a0 != "" {
			if r.ip, err = parseIP(a0); err != nil {
				return r, invalid(r.verb)
			}
		}
	case "HOST-RESET-USERS":
		if has0 && has1 {
			n, ok := strToUint(a1)
			if !ok || n == 0 {
				return r, invalid(r.verb)
			}
			r.maxParallel = n
		}
		if a0 != "" {
			if r.ip, err = parseIP(a0); err != nil {
				return r, fmt.Errorf("doveadm sent invalid HOST-RESET-USERS ip: %s", a0)
			}
		}
	case "USER-LOOKUP":
		r.user, r.tag = a0, a1
	case "USER-MOVE":
		if !has0 || !has1 {
			return r, invalid(r.verb)
		}
		r.user = a0
		if r.ip, err = parseIP(a1); err != nil {
			return r, invalid(r.verb)
		}
	case "USER-KICK":
		if !has0 {
			return r, invalid(r.verb)
		}
		r.user, r.nowait = a0, has1 && a1 == "nowait"
	case "USER-KICK-ALT":
		if len(args) < 2 {
			return r, invalid(r.verb)
		}
		a2, _ := arg(args, 2)
		r.field, r.user, r.nowait = a0, a1, a2 == "nowait"
	default:
		return r, fmt.Errorf("%w: %s", errUnknownCommand, line)
	}
	return r, nil
}

// checkHandshake is Dovecot's version_string_verify for the
// director-doveadm service, major version 1.
func checkHandshake(line string) bool {
	rest, ok := strings.CutPrefix(line, "VERSION\tdirector-doveadm\t")
	if !ok {
		return false
	}
	major, minor, ok := strings.Cut(rest, "\t")
	if !ok {
		return false
	}
	m, ok := strToUint(major)
	if !ok || m != 1 {
		return false
	}
	_, ok = strToUint(minor)
	return ok
}

// replyText makes an error text one line of the protocol.
func replyText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if s == "" || s == "OK" || s == "NOTFOUND" || s == "TRYAGAIN" {
		s = "failed: " + s
	}
	return s
}
