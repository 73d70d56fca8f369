// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"slices"
	"strings"
	"testing"
)

// FuzzReloadLine: the reload reply the socket writes reads back, in the
// reload tool, as the report it was made of, whatever the texts hold;
// and any line (another version's, a broken one) reads as some report.
func FuzzReloadLine(f *testing.F) {
	f.Add(true, "", "tls: new certificate", "listener 127.0.0.1:24 added")
	f.Add(false, "passdb[1]: ldap needs args\nline 3: unknown key", "", "")
	f.Add(false, "a\tb: c\x01d", "director.store", "note: note")
	f.Fuzz(func(t *testing.T, ok bool, problems, restart, notes string) {
		items := func(s string) []string {
			if s == "" {
				return nil
			}
			return strings.Split(s, "|")
		}
		r := ReloadReport{OK: ok, Problems: items(problems), Restart: items(restart), Notes: items(notes)}
		line := reloadLine(r)
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Fatalf("%+v written as %q: not one line", r, line)
		}
		back := ParseReloadLine(line)
		if back.OK != r.OK || !slices.Equal(back.Problems, r.Problems) || !slices.Equal(back.Restart, r.Restart) ||
			!slices.Equal(back.Notes, r.Notes) {
			t.Fatalf("%+v written as %q, read back as %+v", r, line, back)
		}
		ParseReloadLine(problems)
	})
}

// FuzzParseTokens reads admin token files: every token it takes opens
// the door under its name, and nothing else does.
func FuzzParseTokens(f *testing.F) {
	f.Add([]byte("# NAME TOKEN\npoolmon 0123456789abcdef0123\n\nprometheus  s3cret-s3cret-s3cret \r\nanonymous-token-xyz\n"))
	f.Add([]byte("short\n"))
	f.Add([]byte("a b c\n"))
	f.Add([]byte("#only a comment\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		toks, err := ParseTokens(data)
		if err != nil {
			return
		}
		names := map[string][]string{} // token → the names it is given ("" for none)
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
				continue
			}
			tok := fields[len(fields)-1]
			if len(fields) == 2 {
				names[tok] = append(names[tok], fields[0])
			} else {
				names[tok] = append(names[tok], "")
			}
		}
		for tok, given := range names {
			name, ok := toks.check(tok)
			if !ok || !(slices.Contains(given, name) || slices.Contains(given, "") && strings.HasPrefix(name, "token-")) {
				t.Fatalf("token %q of %q opens as %q, %v; named %q", tok, data, name, ok, given)
			}
			if _, ok := toks.check(tok + "x"); ok && names[tok+"x"] == nil {
				t.Fatalf("%q opens with %q", tok+"x", data)
			}
		}
		if _, ok := toks.check(""); ok {
			t.Fatalf("the empty token opens with %q", data)
		}
	})
}
