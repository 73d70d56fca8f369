// SPDX-License-Identifier: Apache-2.0

package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ConfExt is a Dovecot 2.3 ".conf.ext" file (dovecot-ldap.conf.ext,
// dovecot-sql.conf.ext) as key/value pairs, with where each key was set.
type ConfExt struct {
	Values map[string]string
	Where  map[string]string // "file:line" per key, for messages
}

// ReadConfExt reads a Dovecot 2.3 .conf.ext file unchanged: "key = value"
// lines, "#" comments, values optionally in double quotes, a trailing
// backslash continuing a line, "!include FILE" and "!include_try FILE"
// (relative to the including file). A key set twice keeps the last value,
// as Dovecot does.
func ReadConfExt(path string) (*ConfExt, error) {
	c := &ConfExt{Values: map[string]string{}, Where: map[string]string{}}
	if err := c.read(path, 0); err != nil {
		return nil, err
	}
	return c, nil
}

const maxIncludeDepth = 8

func (c *ConfExt) read(path string, depth int) error {
	if depth > maxIncludeDepth {
		return fmt.Errorf("%s: !include nested too deeply", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	lineNo, pending, pendingStart := 0, "", 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line = pending + " " + line
		} else {
			pendingStart = lineNo
		}
		if strings.HasSuffix(line, `\`) {
			pending = strings.TrimSpace(strings.TrimSuffix(line, `\`))
			continue
		}
		pending = ""
		where := fmt.Sprintf("%s:%d", path, pendingStart)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := cutWord(line, "!include_try"); ok {
			if err := c.include(path, rest, depth, true); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			continue
		}
		if rest, ok := cutWord(line, "!include"); ok {
			if err := c.include(path, rest, depth, false); err != nil {
				return fmt.Errorf("%s: %w", where, err)
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%s: expected \"key = value\", got %q", where, line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key == "" {
			return fmt.Errorf("%s: empty key", where)
		}
		c.Values[key] = unquote(value)
		c.Where[key] = where
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

func cutWord(line, word string) (string, bool) {
	rest, ok := strings.CutPrefix(line, word)
	if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
		return "", false
	}
	return strings.TrimSpace(rest), true
}

func (c *ConfExt) include(from, name string, depth int, try bool) error {
	name = unquote(name)
	if !filepath.IsAbs(name) {
		name = filepath.Join(filepath.Dir(from), name)
	}
	matches, err := filepath.Glob(name)
	if err != nil {
		return err
	}
	if len(matches) == 0 {
		if try {
			return nil
		}
		return fmt.Errorf("!include %s: no such file", name)
	}
	for _, m := range matches {
		if err := c.read(m, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// unquote removes one pair of surrounding double quotes, as Dovecot's
// settings parser does ("dnpass = \"secret\"").
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(v[1 : len(v)-1])
	}
	return v
}
