// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeTree writes files (path relative to dir: contents) and returns dir.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readTree(t *testing.T, files map[string]string) (*Config, string) {
	t.Helper()
	dir := writeTree(t, files)
	cfg, err := Read(filepath.Join(dir, "dovecot.conf"), Options{Getenv: func(k string) string { return "env-" + k }})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, dir
}

// flat lists a tree as "path = value" lines with positions relative to
// dir, for comparing.
func flat(n *Node, dir string) []string {
	var out []string
	for _, c := range n.Children {
		rel := relTo(dir, c.Pos.File)
		if c.Section {
			out = append(out, rel+":"+itoa(c.Pos.Line)+" ["+c.Path()+"]")
			out = append(out, flat(c, dir)...)
			continue
		}
		v := c.Value
		if c.File != "" {
			v = "<" + relTo(dir, c.File) + " " + v
		}
		out = append(out, rel+":"+itoa(c.Pos.Line)+" "+c.Path()+" = "+v)
	}
	return out
}

func relTo(dir, p string) string {
	if rel, err := filepath.Rel(dir, p); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return p
}

func itoa(i int) string { return formatSize(int64(i)) }

func TestReadIncludesInOrder(t *testing.T) {
	cfg, dir := readTree(t, map[string]string{
		"dovecot.conf":       "a = 1\n!include conf.d/*.conf\n!include_try local.conf\n!include_try missing/*.conf\n!include extra/{x,y}.conf\nz = last\n",
		"conf.d/20-b.conf":   "b = 20\n",
		"conf.d/10-a.conf":   "# comment\n\nb = 10\n!include ../auth/ldap.conf.ext\n",
		"conf.d/ignored.txt": "c = never\n",
		"auth/ldap.conf.ext": "passdb {\n  driver = ldap\n}\n",
		"extra/y.conf":       "y = 1\n",
		"extra/x.conf":       "x = 1\n",
	})
	got := strings.Join(flat(cfg.Top, dir), "\n")
	want := strings.Join([]string{
		"dovecot.conf:1 a = 1",
		"conf.d/10-a.conf:3 b = 10",
		"auth/ldap.conf.ext:1 [passdb]",
		"auth/ldap.conf.ext:2 passdb { driver } = ldap",
		"conf.d/20-b.conf:1 b = 20",
		"extra/x.conf:1 x = 1",
		"extra/y.conf:1 y = 1",
		"dovecot.conf:6 z = last",
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if len(cfg.Files) != 6 {
		t.Errorf("files read: %v", cfg.Files)
	}
}

func TestReadValues(t *testing.T) {
	cfg, dir := readTree(t, map[string]string{
		"dovecot.conf": `plain = value with  spaces   # a comment
double = "quoted # not a comment \"x\" \\ \n"
single = 'it''s'
empty =
nospace=1
hash = a#b
cert = </etc-copy/cert.pem
relative = < certs/key.pem
missing = <nowhere.pem
protocols = imap
protocols = $protocols lmtp  sieve
home = $ENV:HOME/mail
mixed = $plain x$protocols
literal = x$protocols
continued = first \
   second
lost = not this \
# a comment ends it
after = 1
section "quoted name" {
  inner = $plain
  protocols = $protocols pop3
}
`,
		"etc-copy/cert.pem": "CERT\n",
		"certs/key.pem":     "KEY",
	})
	got := strings.Join(flat(cfg.Top, dir), "\n")
	want := strings.Join([]string{
		"dovecot.conf:1 plain = value with  spaces",
		`dovecot.conf:2 double = quoted # not a comment "x" \ n`,
		"dovecot.conf:3 single = it''s",
		"dovecot.conf:4 empty = ",
		"dovecot.conf:5 nospace = 1",
		"dovecot.conf:6 hash = a",
		// An absolute "<file" is read as it is written (no Root here).
		"dovecot.conf:7 cert = </etc-copy/cert.pem ",
		"dovecot.conf:8 relative = <certs/key.pem KEY",
		"dovecot.conf:9 missing = <nowhere.pem ",
		"dovecot.conf:10 protocols = imap",
		"dovecot.conf:11 protocols = imap lmtp sieve",
		"dovecot.conf:12 home = env-HOME/mail",
		"dovecot.conf:13 mixed = value with  spaces x$protocols",
		"dovecot.conf:14 literal = x$protocols",
		"dovecot.conf:15 continued = first second",
		"dovecot.conf:19 after = 1",
		"dovecot.conf:20 [section quoted name]",
		"dovecot.conf:21 section quoted name { inner } = value with  spaces",
		"dovecot.conf:22 section quoted name { protocols } = imap lmtp sieve pop3",
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var cert, missing *Node
	for _, n := range cfg.Top.Children {
		switch n.Key {
		case "cert":
			cert = n
		case "missing":
			missing = n
		}
	}
	if cert.FileErr == nil || missing.FileErr == nil || !errors.Is(missing.FileErr, os.ErrNotExist) {
		t.Errorf("unreadable files: %v, %v", cert.FileErr, missing.FileErr)
	}
	if len(cfg.Notes) != 1 || !strings.Contains(cfg.Notes[0].Why, "'#'") || cfg.Notes[0].Pos.Line != 6 {
		t.Errorf("notes: %v", cfg.Notes)
	}
}

func TestReadRoot(t *testing.T) {
	root := writeTree(t, map[string]string{
		"etc/dovecot/dovecot.conf":      "!include conf.d/*.conf\nssl_cert = </etc/ssl/mail.pem\n",
		"etc/dovecot/conf.d/a.conf":     "a = 1\n",
		"etc/ssl/mail.pem":              "PEM",
		"usr/share/dovecot/dh.pem":      "DH",
		"etc/dovecot/conf.d/b.conf":     "ssl_dh = </usr/share/dovecot/dh.pem\n",
		"etc/dovecot/conf.d/sub/c.conf": "never = read\n",
	})
	cfg, err := Read("/etc/dovecot/dovecot.conf", Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(flat(cfg.Top, "/"), "\n")
	want := strings.Join([]string{
		"etc/dovecot/conf.d/a.conf:1 a = 1",
		"etc/dovecot/conf.d/b.conf:1 ssl_dh = <usr/share/dovecot/dh.pem DH",
		"etc/dovecot/dovecot.conf:2 ssl_cert = <etc/ssl/mail.pem PEM",
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestReadNestedSections(t *testing.T) {
	cfg, dir := readTree(t, map[string]string{
		"dovecot.conf": "service imap-login {\n  inet_listener imaps {\n    port = 993\n    ssl = yes\n  }\n  inet_listener {\n  }\n  !include listener.inc\n}\nprotocol imap {\n}\n",
		// An include may close the sections it opened elsewhere, as in
		// Dovecot, whose section stack spans files.
		"listener.inc": "inet_listener imap {\nport = 143\n}\n",
	})
	got := strings.Join(flat(cfg.Top, dir), "\n")
	want := strings.Join([]string{
		"dovecot.conf:1 [service imap-login]",
		"dovecot.conf:2 [service imap-login { inet_listener imaps }]",
		"dovecot.conf:3 service imap-login { inet_listener imaps { port } } = 993",
		"dovecot.conf:4 service imap-login { inet_listener imaps { ssl } } = yes",
		"dovecot.conf:6 [service imap-login { inet_listener }]",
		"listener.inc:1 [service imap-login { inet_listener imap }]",
		"listener.inc:2 service imap-login { inet_listener imap { port } } = 143",
		"dovecot.conf:10 [protocol imap]",
	}, "\n")
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestReadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string // the error, with dir as "DIR"
	}{
		{"unexpected }", map[string]string{"dovecot.conf": "a = 1\n}\n"}, "DIR/dovecot.conf:2: unexpected '}'"},
		{"missing }", map[string]string{"dovecot.conf": "a = 1\nservice x {\n  b = 2\n"}, `DIR/dovecot.conf:2: missing '}' for section "service x"`},
		{"garbage", map[string]string{"dovecot.conf": "service x { b = 1 }\n"}, "DIR/dovecot.conf:1: garbage after '{'"},
		{"no brace", map[string]string{"dovecot.conf": "\n\njust words\n"}, `DIR/dovecot.conf:3: "just words": expecting "key = value" or "section [name] {"`},
		{"no key", map[string]string{"dovecot.conf": "= 1\n"}, "DIR/dovecot.conf:1: setting without a name"},
		{"include none", map[string]string{"dovecot.conf": "a = 1\n!include conf.d/*.conf\n"}, "DIR/dovecot.conf:2: !include DIR/conf.d/*.conf: no matches"},
		{"include error inside", map[string]string{"dovecot.conf": "!include a.conf\n", "a.conf": "x = 1\n\ny {\n"}, `DIR/a.conf:3: missing '}' for section "y"`},
		{"recursive", map[string]string{"dovecot.conf": "!include a.conf\n", "a.conf": "\n!include dovecot.conf\n"}, "DIR/a.conf:2: recursive include file: DIR/dovecot.conf"},
		{"empty $", map[string]string{"dovecot.conf": "a = $ b\n"}, `DIR/dovecot.conf:1: a: "$" without a variable name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeTree(t, tc.files)
			_, err := Read(filepath.Join(dir, "dovecot.conf"), Options{})
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("got %v, want an *Error", err)
			}
			if got := strings.ReplaceAll(err.Error(), dir, "DIR"); got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
	if _, err := Read(filepath.Join(t.TempDir(), "none.conf"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing main file: %v", err)
	}
}

func TestReadCRLFAndEOF(t *testing.T) {
	cfg, dir := readTree(t, map[string]string{
		"dovecot.conf": "a = 1\r\nb = \"x\"\r\nc = no newline at the end",
	})
	got := strings.Join(flat(cfg.Top, dir), "\n")
	want := "dovecot.conf:1 a = 1\ndovecot.conf:2 b = x\ndovecot.conf:3 c = no newline at the end"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestUnknownVariableNoted(t *testing.T) {
	cfg, _ := readTree(t, map[string]string{
		"dovecot.conf":      "x = $nothing_here y\nprotocols = $protocols sieve\n!include p.d/*.protocol\n",
		"p.d/imap.protocol": "protocols = $protocols imap\n",
	})
	var whys []string
	for _, n := range cfg.Notes {
		whys = append(whys, n.Key+": "+n.Why)
	}
	if len(whys) != 2 || !strings.Contains(whys[0], "$nothing_here") || !strings.Contains(whys[1], `"imap pop3 lmtp" is assumed`) {
		t.Errorf("notes: %q", whys)
	}
	// Both expansions went ahead; the .protocol file saw protocols set.
	if v := cfg.Top.Children[2].Value; v != "imap pop3 lmtp sieve imap" {
		t.Errorf("protocols = %q", v)
	}
}

func TestExpandBraces(t *testing.T) {
	got := strings.Join(expandBraces("a{b,c{d,e}}f{1,2}"), " ")
	if want := "abf1 abf2 acdf1 acdf2 acef1 acef2"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if got := expandBraces("no{brace"); len(got) != 1 || got[0] != "no{brace" {
		t.Errorf("unbalanced: %v", got)
	}
}

// FuzzRead feeds any text to the reader: it must answer with a tree or an
// *Error, never panic.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		"a = 1\n", "service x {\n inet_listener y {\n port = 1\n }\n}\n", "a = \"b\\\"\"\n",
		"a = $a $b $ENV:X\n", "a = <f\n", "!include_try *.conf\n", "x \\\n = y\n", "}\n", "a = 'b\n",
		"s \"n\" {\n}\n", "#\n# x\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		dir := t.TempDir()
		p := filepath.Join(dir, "dovecot.conf")
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, err := Read(p, Options{Getenv: func(string) string { return "" }})
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("%q: %v is not an *Error", s, err)
			}
			return
		}
		if _, err := Translate(cfg, TranslateOptions{}); err != nil {
			t.Fatalf("%q: translate: %v", s, err)
		}
	})
}
