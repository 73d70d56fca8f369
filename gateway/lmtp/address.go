// SPDX-License-Identifier: Apache-2.0

package lmtp

import (
	"errors"
	"strings"
)

// parsePath reads "<addr>" (RFC 5321 4.1.2 reverse/forward path) and the
// ESMTP parameters after it: "FROM:<a@b> SIZE=10 BODY=8BITMIME".
// Source routes ("<@x,@y:a@b>") are accepted and dropped, as RFC 5321
// C says they must be.
func parsePath(arg, prefix string) (addr string, params map[string]string, err error) {
	// The errors are Dovecot's lib-smtp words: the client sees them.
	rest, ok := cutPrefixFold(arg, prefix)
	if !ok {
		return "", nil, errNoPrefix
	}
	// Spaces before the path are let be (TestParsePath pins it):
	// Dovecot refuses them, but nothing is lost by reading what a sloppy
	// client meant.
	rest = strings.TrimLeft(rest, " ")
	if !strings.HasPrefix(rest, "<") {
		return "", nil, errors.New("Missing '<' at beginning of path")
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", nil, errors.New("Missing '>' at end of path")
	}
	addr = rest[1:end]
	if i := strings.IndexByte(addr, ':'); i >= 0 && strings.HasPrefix(addr, "@") {
		addr = addr[i+1:]
	}
	// RFC 5321 4.1.2 (and RFC 6531's UTF-8) allows no control characters
	// in a path: passed on, they would reach the backend's command line and
	// come back in our replies.
	if strings.ContainsAny(addr, " \t<>") || strings.ContainsFunc(addr, isControl) {
		return "", nil, errors.New("invalid address")
	}
	params = map[string]string{}
	for _, p := range strings.Fields(rest[end+1:]) {
		k, v, _ := strings.Cut(p, "=")
		params[strings.ToUpper(k)] = v
	}
	return addr, params, nil
}

// errNoPrefix: the command's FROM: or TO: is missing; Dovecot calls that
// invalid parameters rather than an invalid path.
var errNoPrefix = errors.New("invalid parameters")

func isControl(r rune) bool { return r < ' ' || r == 0x7f }

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return "", false
	}
	return s[len(prefix):], true
}

// recipient is a RCPT address split for lookup: the user without its
// +detail, and the detail (Dovecot's recipient_delimiter).
type recipient struct {
	addr   string // as the client sent it
	user   string // local part without detail, @domain
	detail string
}

func splitRecipient(addr, delimiter string) recipient {
	r := recipient{addr: addr, user: addr}
	if delimiter == "" {
		return r
	}
	local, domain, hasDomain := strings.Cut(addr, "@")
	// Any of the delimiter's characters starts the detail (Dovecot lets
	// recipient_delimiter list several).
	if i := strings.IndexAny(local, delimiter); i > 0 {
		r.detail = local[i+1:]
		r.user = local[:i]
		if hasDomain {
			r.user += "@" + domain
		}
		r.detail = string(local[i]) + r.detail
	}
	return r
}

// rewrite returns the address to give the backend for user (the passdb's
// destuser, or the looked-up user), keeping the +detail.
func (r recipient) rewrite(user string) string {
	if user == "" || user == r.user {
		return r.addr
	}
	if r.detail == "" {
		return user
	}
	local, domain, hasDomain := strings.Cut(user, "@")
	out := local + r.detail
	if hasDomain {
		out += "@" + domain
	}
	return out
}
