// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Pos is where a setting or section was written.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Node is a setting ("key = value") or a section ("type [name] { ... }").
type Node struct {
	Pos Pos
	// Key is a setting's name, or a section's type (service, passdb,
	// protocol, inet_listener, ...).
	Key string
	// Value is a setting's value once quotes, $variables and "<file" were
	// applied: for "<file", the file's contents.
	Value string
	// File is the path of a "key = <path" setting, resolved against the
	// directory of the file that wrote it, as Dovecot resolves it.
	File string
	// FileErr says why File could not be read (Value is then empty).
	// Reading is not required: a certificate's key is often readable by
	// root only, and the path is what a translation needs.
	FileErr error

	Section  bool
	Name     string  // a section's name ("imap-login", "" when none)
	Children []*Node // a section's settings and sections, in order
	Parent   *Node
}

// Path names n the way Dovecot's doveconf nests it:
// "service imap-login { inet_listener imaps { port } }".
func (n *Node) Path() string {
	var parts []string
	for p := n; p != nil && p.Parent != nil; p = p.Parent {
		s := p.Key
		if p.Section && p.Name != "" {
			s += " " + p.Name
		}
		parts = append(parts, s)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteString(parts[i])
		if i > 0 {
			b.WriteString(" { ")
		}
	}
	for i := 1; i < len(parts); i++ {
		b.WriteString(" }")
	}
	return b.String()
}

// Config is a Dovecot configuration as read.
type Config struct {
	// Path is the main file, as the configured system sees it.
	Path string
	// Top holds the top-level settings and sections (a section without
	// key).
	Top *Node
	// Files lists every file read, main file first.
	Files []string
	// Notes are what reading had to guess (a $variable Dovecot would
	// have taken from its compiled-in defaults, an ambiguous '#').
	Notes []Note
}

// Options change where and how files are read.
type Options struct {
	// Root is prepended to every path opened, so that a copy of another
	// machine's configuration (a tarball of /etc/dovecot) reads as it
	// would there; paths in the result stay those of that machine, and a
	// relative main path is taken from Root.
	Root string
	// Getenv answers $ENV:NAME (default os.Getenv).
	Getenv func(string) string
}

// Error is a configuration Dovecot itself would refuse to read.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// maxIncludeDepth bounds include nesting (real configurations nest two or
// three deep), which the recursion check alone would not when names
// differ (a.conf including ./a.conf through a symlink, say).
const maxIncludeDepth = 32

// Read reads the Dovecot configuration whose main file is path.
func Read(path string, opt Options) (*Config, error) {
	if opt.Getenv == nil {
		opt.Getenv = os.Getenv
	}
	if opt.Root != "" && !filepath.IsAbs(path) {
		path = "/" + path // under Root, every path is the other machine's
	}
	if opt.Root == "" && !filepath.IsAbs(path) {
		// Relative paths in it ("<certs/x.pem", args) resolve against
		// the main file's directory; an absolute one keeps them valid
		// wherever maildirector later runs.
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
	}
	r := &reader{opt: opt, cfg: &Config{Path: path, Top: &Node{Section: true}}}
	r.stack = []*Node{r.cfg.Top}
	if err := r.readFile(path, nil); err != nil {
		return nil, err
	}
	// A "\" on the very last line continues nothing: the unfinished
	// line is dropped, as Dovecot drops it.
	if len(r.stack) > 1 {
		s := r.stack[len(r.stack)-1]
		return nil, &Error{Pos: s.Pos, Msg: fmt.Sprintf("missing '}' for section %q", strings.TrimSpace(s.Key+" "+s.Name))}
	}
	return r.cfg, nil
}

type reader struct {
	opt   Options
	cfg   *Config
	stack []*Node // open sections, the top level first
	chain []string

	// pending is a line continued with "\", carried to the next line
	// even across the end of an included file, as Dovecot does.
	pending    string
	pendingPos Pos
}

// real maps a path of the configured system to the file to open.
func (r *reader) real(p string) string {
	if r.opt.Root == "" {
		return p
	}
	return filepath.Join(r.opt.Root, p)
}

func (r *reader) readFile(path string, from *Pos) error {
	for _, p := range r.chain {
		if p == path {
			return &Error{Pos: *from, Msg: "recursive include file: " + path}
		}
	}
	if len(r.chain) >= maxIncludeDepth {
		return &Error{Pos: *from, Msg: "includes nested too deeply"}
	}
	data, err := readLimited(r.real(path), maxFileSize)
	if err != nil {
		if from == nil {
			return err
		}
		return &Error{Pos: *from, Msg: fmt.Sprintf("couldn't open include file %s: %v", path, unwrapPath(err))}
	}
	r.cfg.Files = append(r.cfg.Files, path)
	r.chain = append(r.chain, path)
	defer func() { r.chain = r.chain[:len(r.chain)-1] }()
	text := string(data)
	text = strings.TrimSuffix(text, "\n")
	if text == "" {
		return nil
	}
	for i, line := range strings.Split(text, "\n") {
		if err := r.line(Pos{File: path, Line: i + 1}, strings.TrimSuffix(line, "\r")); err != nil {
			return err
		}
	}
	return nil
}

// maxFileSize bounds what one file may hold, so that a "</dev/zero"
// ends in an error rather than in exhausted memory.
const maxFileSize = 16 << 20

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return data, nil
}

// unwrapPath drops the path an fs error repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isWhite(c byte) bool { return c == ' ' || c == '\t' }

// line handles one line the way Dovecot's config_parse_line does.
func (r *reader) line(pos Pos, line string) error {
	line = strings.TrimLeft(line, " \t")
	if line == "" || line[0] == '#' {
		// Dovecot forgets a pending continuation here, too.
		r.pending = ""
		return nil
	}
	line = r.stripComment(pos, line)
	line = strings.TrimRight(line, " \t")
	if strings.HasSuffix(line, `\`) {
		part := strings.TrimRight(strings.TrimSuffix(line, `\`), " \t")
		if r.pending == "" {
			r.pendingPos = pos
		}
		if part != "" {
			r.pending += part + " "
		}
		return nil
	}
	if r.pending != "" {
		line = r.pending + line
		pos = r.pendingPos
		r.pending = ""
	}

	i := strings.IndexFunc(line, func(c rune) bool { return c == ' ' || c == '\t' || c == '=' })
	if i < 0 {
		i = len(line)
	}
	key, rest := line[:i], strings.TrimLeft(line[i:], " \t")

	switch key {
	case "!include", "!include_try":
		return r.include(pos, rest, key == "!include_try")
	}
	if strings.HasPrefix(rest, "=") {
		if key == "" {
			return &Error{Pos: pos, Msg: "setting without a name"}
		}
		return r.setting(pos, key, strings.TrimLeft(rest[1:], " \t"))
	}
	if key == "}" && rest == "" {
		if len(r.stack) == 1 {
			return &Error{Pos: pos, Msg: "unexpected '}'"}
		}
		r.stack = r.stack[:len(r.stack)-1]
		return nil
	}
	return r.openSection(pos, key, rest)
}

// stripComment cuts a "#" comment outside quotes.
func (r *reader) stripComment(pos Pos, line string) string {
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case '\'', '"':
			j := i + 1
			for ; j < len(line) && line[j] != c; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
				}
			}
			if j >= len(line) {
				return line
			}
			i = j
		case '#':
			if !isWhite(line[i-1]) {
				r.cfg.Notes = append(r.cfg.Notes, Note{Pos: pos, Kind: NeedsDecision,
					Why: "a '#' without a space before it starts a comment (Dovecot warns about it too); quote the value if it belongs to it"})
			}
			return line[:i]
		}
	}
	return line
}

func (r *reader) top() *Node { return r.stack[len(r.stack)-1] }

func (r *reader) add(n *Node) {
	t := r.top()
	n.Parent = t
	t.Children = append(t.Children, n)
}

func (r *reader) setting(pos Pos, key, value string) error {
	n := &Node{Pos: pos, Key: key}
	switch {
	case strings.HasPrefix(value, "<"):
		n.File = r.resolve(pos.File, strings.TrimLeft(value[1:], " \t"))
		data, err := readLimited(r.real(n.File), maxFileSize)
		if err != nil {
			n.FileErr = unwrapPath(err)
		} else {
			n.Value = string(data)
		}
	case strings.HasPrefix(value, "$"):
		v, err := r.expand(pos, key, value)
		if err != nil {
			return err
		}
		n.Value = v
	case len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0]:
		n.Value = unescape(value[1 : len(value)-1])
	default:
		n.Value = value
	}
	r.add(n)
	return nil
}

// unescape drops each backslash and keeps the byte after it, as
// Dovecot's str_unescape does (so "\n" is "n", not a newline).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func (r *reader) openSection(pos Pos, key, rest string) error {
	name := ""
	switch {
	case strings.HasPrefix(rest, "{"):
	case strings.HasPrefix(rest, `"`):
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return &Error{Pos: pos, Msg: fmt.Sprintf("%s: expecting '{'", key)}
		}
		name = unescape(rest[1 : 1+end])
		rest = strings.TrimLeft(rest[2+end:], " \t")
	default:
		i := strings.IndexAny(rest, " \t")
		if i < 0 {
			i = len(rest)
		}
		name, rest = rest[:i], strings.TrimLeft(rest[i:], " \t")
	}
	if !strings.HasPrefix(rest, "{") {
		return &Error{Pos: pos, Msg: fmt.Sprintf("%q: expecting \"key = value\" or \"section [name] {\"", strings.TrimSpace(key+" "+name+" "+rest))}
	}
	if rest != "{" {
		return &Error{Pos: pos, Msg: "garbage after '{'"}
	}
	n := &Node{Pos: pos, Key: key, Name: name, Section: true}
	r.add(n)
	r.stack = append(r.stack, n)
	return nil
}

// resolve makes p relative to the directory of the file that names it.
func (r *reader) resolve(file, p string) string {
	if strings.HasPrefix(p, "/") {
		return p
	}
	return filepath.Join(filepath.Dir(file), p)
}

func (r *reader) include(pos Pos, pattern string, try bool) error {
	if pattern == "" {
		return &Error{Pos: pos, Msg: "!include without a file"}
	}
	pattern = r.resolve(pos.File, pattern)
	var matches []string
	for _, p := range expandBraces(pattern) {
		m, err := filepath.Glob(r.real(p))
		if err != nil {
			return &Error{Pos: pos, Msg: fmt.Sprintf("!include %s: %v", pattern, err)}
		}
		for _, x := range m {
			if r.opt.Root != "" {
				rel, err := filepath.Rel(r.opt.Root, x)
				if err != nil {
					return err
				}
				x = "/" + rel
			}
			matches = append(matches, x)
		}
	}
	if len(matches) == 0 {
		if try {
			return nil
		}
		return &Error{Pos: pos, Msg: fmt.Sprintf("!include %s: no matches", pattern)}
	}
	for _, m := range matches {
		if try {
			f, err := os.Open(r.real(m))
			if err != nil {
				continue
			}
			f.Close()
		}
		if err := r.readFile(m, &pos); err != nil {
			return err
		}
	}
	return nil
}

// expandBraces turns "a{b,c}d" into "abd", "acd" (glob(3)'s GLOB_BRACE,
// which Dovecot asks for; Go's Glob has no braces).
func expandBraces(p string) []string {
	depth, open := 0, -1
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '{':
			if depth == 0 {
				open = i
			}
			depth++
		case '}':
			if depth == 0 {
				continue
			}
			depth--
			if depth > 0 {
				continue
			}
			var out []string
			for _, alt := range splitTopLevel(p[open+1 : i]) {
				out = append(out, expandBraces(p[:open]+alt+p[i+1:])...)
			}
			return out
		}
	}
	return []string{p}
}

func splitTopLevel(s string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}
