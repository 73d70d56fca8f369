// SPDX-License-Identifier: Apache-2.0

package sql

import (
	"errors"
	"fmt"
	"strings"

	"github.com/maildirector/maildirector/auth"
)

// query is a Dovecot SQL query turned into a parameterized one. Dovecot
// escapes %variables into the query text; we never put them in the text at
// all: every string literal that contains %variables becomes one "?" bound
// to the literal's expanded content ('%n@%d' binds "alice@example.com"),
// and every %variable outside a literal becomes one "?".
type query struct {
	text   string
	params []string // templates, expanded per request
}

// compile parses a Dovecot query template (MySQL dialect: '...' and "..."
// strings with doubled or backslash-escaped quotes, `...` identifiers).
func compile(tmpl string) (*query, error) {
	q := &query{}
	var b strings.Builder
	for i := 0; i < len(tmpl); {
		c := tmpl[i]
		switch {
		case c == '\'' || c == '"':
			end, content, err := scanString(tmpl, i)
			if err != nil {
				return nil, err
			}
			if strings.Contains(content, "%") {
				b.WriteByte('?')
				q.params = append(q.params, content)
			} else {
				b.WriteString(tmpl[i:end])
			}
			i = end
		case c == '`':
			end := strings.IndexByte(tmpl[i+1:], '`')
			if end < 0 {
				return nil, errors.New("unterminated `identifier`")
			}
			b.WriteString(tmpl[i : i+end+2])
			i += end + 2
		case c == '%':
			if i+1 < len(tmpl) && tmpl[i+1] == '%' {
				b.WriteByte('%')
				i += 2
				continue
			}
			n, err := varLen(tmpl[i:])
			if err != nil {
				return nil, err
			}
			b.WriteByte('?')
			q.params = append(q.params, tmpl[i:i+n])
			i += n
		default:
			b.WriteByte(c)
			i++
		}
	}
	q.text = b.String()
	// Check every template now, so that a typo fails at start-up.
	if _, err := q.args((&auth.Request{}).Vars()); err != nil {
		return nil, err
	}
	return q, nil
}

// args expands the parameters for one request.
func (q *query) args(look auth.Lookup) ([]any, error) {
	out := make([]any, len(q.params))
	for i, p := range q.params {
		v, err := auth.Expand(p, look, nil)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// scanString returns the end of the string literal starting at i and its
// unescaped content.
func scanString(s string, i int) (end int, content string, err error) {
	quote := s[i]
	var b strings.Builder
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if j+1 < len(s) {
				j++
				b.WriteByte(s[j])
			}
		case quote:
			if j+1 < len(s) && s[j+1] == quote { // doubled quote
				b.WriteByte(quote)
				j++
				continue
			}
			return j + 1, b.String(), nil
		default:
			b.WriteByte(s[j])
		}
	}
	return 0, "", fmt.Errorf("unterminated string in query at %q", s[i:])
}

// varLen returns the length of the %variable at the start of s: "%u",
// "%Lu", "%2.1n", "%{user}", "%L{domain}".
func varLen(s string) (int, error) {
	i := 1
	for i < len(s) && (s[i] == 'L' || s[i] == 'U') {
		i++
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
		i++
	}
	if i >= len(s) {
		return 0, fmt.Errorf("incomplete variable %q", s)
	}
	if s[i] == '{' {
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return 0, fmt.Errorf("missing '}' in %q", s)
		}
		return i + end + 1, nil
	}
	return i + 1, nil
}
