// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"fmt"
	"strings"
)

// expand applies a value that starts with "$": each whitespace-separated
// word "$name" becomes the value name had so far (in this section, else
// in the enclosing ones), "$ENV:NAME" an environment variable; words are
// joined by one space, as Dovecot's config_write_keyvariable does.
func (r *reader) expand(pos Pos, key, value string) (string, error) {
	words := strings.FieldsFunc(value, func(c rune) bool { return c == ' ' || c == '\t' })
	out := make([]string, 0, len(words))
	for _, w := range words {
		name, isVar := strings.CutPrefix(w, "$")
		switch {
		case !isVar:
			out = append(out, w)
		case name == "":
			return "", &Error{Pos: pos, Msg: fmt.Sprintf("%s: \"$\" without a variable name", key)}
		case strings.HasPrefix(name, "ENV:"):
			out = append(out, r.opt.Getenv(name[len("ENV:"):]))
		default:
			v, ok := r.lookup(name)
			if !ok {
				v = r.compiledDefault(pos, key, name)
			}
			out = append(out, v)
		}
	}
	return strings.Join(out, " "), nil
}

func (r *reader) lookup(name string) (string, bool) {
	for i := len(r.stack) - 1; i >= 0; i-- {
		kids := r.stack[i].Children
		for j := len(kids) - 1; j >= 0; j-- {
			if !kids[j].Section && kids[j].Key == name {
				return kids[j].Value, true
			}
		}
	}
	return "", false
}

// compiledDefault is what Dovecot would take for a $name not set before:
// its built-in default. The few a Director's configuration refers to are
// known; any other is taken as empty, and said so.
func (r *reader) compiledDefault(pos Pos, key, name string) string {
	switch name {
	case "protocols":
		// Debian builds Dovecot with no protocols and lets each
		// package's protocols.d/*.protocol file add its own with
		// "protocols = $protocols imap"; upstream's default is
		// "imap pop3 lmtp", which a hand-written
		// "protocols = $protocols sieve" extends.
		if strings.HasSuffix(pos.File, ".protocol") {
			return ""
		}
		r.cfg.Notes = append(r.cfg.Notes, Note{Pos: pos, Key: key, Kind: NeedsDecision,
			Why: "$protocols is not set before this line: Dovecot's upstream default \"imap pop3 lmtp\" is assumed (Debian's packages start from none)"})
		return "imap pop3 lmtp"
	case "listen":
		return "*, ::"
	case "auth_mechanisms":
		return "plain"
	case "mail_plugins", "login_trusted_networks", "haproxy_trusted_networks":
		return ""
	}
	r.cfg.Notes = append(r.cfg.Notes, Note{Pos: pos, Key: key, Kind: NeedsDecision,
		Why: fmt.Sprintf("$%s is not set before this line; Dovecot would use its built-in default, taken as empty here", name)})
	return ""
}
