// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/maildirector/maildirector/config"
)

// Result is a translated configuration.
type Result struct {
	// YAML is maildirector's configuration, each value commented with
	// the Dovecot line it came from, the notes repeated at its end.
	YAML []byte
	// Notes list what was not translated, or translated with a caveat,
	// in the order the files were read.
	Notes []Note
}

// TranslateOptions add what a Dovecot configuration file does not hold.
type TranslateOptions struct {
	// Dump is the output of "doveadm director dump" on a running
	// Director: the ring's backends with their current vhost counts and
	// tags, which doveadm changed at run time and dovecot.conf does not
	// know. With it the backends are the ring's, so that every user
	// hashes to the backend Director would have chosen.
	Dump string
	// DumpName names the dump in notes.
	DumpName string
}

// Import reads the Dovecot configuration at path and translates it.
func Import(path string, ro Options, to TranslateOptions) (*Result, error) {
	cfg, err := Read(path, ro)
	if err != nil {
		return nil, err
	}
	return Translate(cfg, to)
}

type translator struct {
	cfg      *Config
	opt      TranslateOptions
	dir      string // the main file's directory: positions are shown relative to it
	used     map[*Node]bool
	notes    []Note
	global   map[string]*Node // the top-level settings, the last of each key
	filters  []*Node          // protocol, local, remote and local_name blocks, nested ones too
	services map[string][]*Node
	passdbs  []*Node
	userdbs  []*Node

	// Shared between the parts of the translation.
	sslMode    string // yes, no or required
	haveCert   bool   // tls.cert and tls.key are written
	clientCA   bool   // tls.client_ca_file is written
	lmtpPorts  []int  // ports of the LMTP listeners written
	lmtpPortAt []*Node
	protocols  map[string]bool
	needMaster []string // mechanisms written that need a master login on the backend
}

// Translate writes cfg as maildirector's configuration.
func Translate(cfg *Config, opt TranslateOptions) (*Result, error) {
	t := &translator{
		cfg: cfg, opt: opt, dir: filepath.Dir(cfg.Path),
		used: map[*Node]bool{}, global: map[string]*Node{}, services: map[string][]*Node{},
	}
	t.index()

	// Parts are computed in the order they depend on each other and
	// written in the order of the README's configuration reference.
	t.protocols = t.readProtocols()
	tls := t.tls()
	listen := t.listeners()
	beforeTLS, afterTLS := t.trust()
	auth := t.auth()
	passdb := t.chain("passdb", t.passdbs)
	userdb := t.chain("userdb", t.userdbs)
	director, err := t.director()
	if err != nil {
		return nil, err
	}
	backend := t.backend()
	lmtp := t.lmtp()
	sieve := t.sieve()
	limits := t.limits()
	t.leftovers(t.cfg.Top)

	root := newMap()
	if len(listen) > 0 {
		root.maps("listen", listen)
	} else {
		t.note(Pos{File: cfg.Path, Line: 1}, "listen", NeedsDecision, "no IMAP, POP3, ManageSieve or LMTP listener was found: add one under listen")
	}
	root.merge(beforeTLS)
	root.add("tls", tls)
	root.merge(afterTLS)
	root.add("auth", auth)
	if len(passdb) > 0 {
		root.maps("passdb", passdb)
	} else {
		t.note(Pos{File: cfg.Path, Line: 1}, "passdb", NeedsDecision, "no passdb could be translated: maildirector needs at least one (a Director without authentication used {driver: static, args: proxy=y nopassword=y})")
	}
	if len(userdb) > 0 {
		root.maps("userdb", userdb)
	}
	root.add("director", director)
	root.add("backend", backend)
	root.add("lmtp", lmtp)
	root.add("sieve", sieve)
	root.add("limits", limits)

	t.notes = append(t.notes, cfg.Notes...)
	t.sortNotes()
	for i := range t.notes {
		t.notes[i].Pos = t.show(t.notes[i].Pos)
	}
	y, err := encode(root, t.head(), t.foot())
	if err != nil {
		return nil, err
	}
	// Say it when what is left needs a hand before maildirector takes it
	// (no backend, no passdb): the notes above say why.
	if _, err := config.Parse(y); err != nil {
		t.notes = append(t.notes, Note{Pos: t.show(Pos{File: cfg.Path, Line: 1}), Kind: NeedsDecision,
			Why: "the result does not load yet: " + strings.ReplaceAll(err.Error(), "\n", "; ")})
		if y, err = encode(root, t.head(), t.foot()); err != nil {
			return nil, err
		}
	}
	return &Result{YAML: y, Notes: t.notes}, nil
}

func isFilter(key string) bool {
	switch key {
	case "protocol", "local", "remote", "local_name":
		return true
	}
	return false
}

func (t *translator) index() {
	for _, n := range t.cfg.Top.Children {
		if !n.Section {
			if old := t.global[n.Key]; old != nil {
				t.used[old] = true // Dovecot takes the last one
			}
			t.global[n.Key] = n
			continue
		}
		switch n.Key {
		case "protocol", "local", "remote", "local_name":
			t.addFilter(n)
		case "service":
			t.services[n.Name] = append(t.services[n.Name], n)
		case "passdb":
			t.passdbs = append(t.passdbs, n)
		case "userdb":
			t.userdbs = append(t.userdbs, n)
		}
	}
	t.markShadowed(t.cfg.Top)
}

// markShadowed marks, in every section, the settings a later one of the
// same key replaces: Dovecot uses the last, and the earlier ones need no
// note.
func (t *translator) markShadowed(sec *Node) {
	last := map[string]*Node{}
	for _, c := range sec.Children {
		if c.Section {
			t.markShadowed(c)
			continue
		}
		if old := last[c.Key]; old != nil {
			t.used[old] = true
		}
		last[c.Key] = c
	}
}

func (t *translator) addFilter(n *Node) {
	t.filters = append(t.filters, n)
	for _, c := range n.Children {
		if c.Section && isFilter(c.Key) {
			t.addFilter(c)
		}
	}
}

// get returns the top-level setting key, or nil, and marks it used.
func (t *translator) get(key string) *Node {
	n := t.global[key]
	if n != nil {
		t.used[n] = true
		t.checkFile(n)
	}
	return n
}

// pathKeys are settings whose "<file" is translated as its path, so that
// the file need not be readable here (a key often is not).
var pathKeys = map[string]bool{"ssl_cert": true, "ssl_key": true, "ssl_ca": true,
	"ssl_client_cert": true, "ssl_client_key": true, "ssl_client_ca_file": true}

// checkFile notes a "<file" value whose contents are needed but could
// not be read: Dovecot would have refused to start.
func (t *translator) checkFile(n *Node) {
	if n.FileErr != nil && !pathKeys[n.Key] {
		t.note(n.Pos, n.Path(), NeedsDecision, fmt.Sprintf("%s cannot be read here (%v): the value is taken as empty", n.File, n.FileErr))
	}
}

// filtered returns the effective settings of key inside protocol, local,
// remote and local_name blocks.
func (t *translator) filtered(key string) []*Node {
	var out []*Node
	for _, f := range t.filters {
		var last *Node
		for _, c := range f.Children {
			if !c.Section && c.Key == key && !t.shadowed(c) {
				last = c
			}
		}
		if last != nil {
			out = append(out, last)
		}
	}
	return out
}

// shadowed reports a setting a later one in the same block replaced.
func (t *translator) shadowed(n *Node) bool {
	for i := len(n.Parent.Children) - 1; i >= 0; i-- {
		c := n.Parent.Children[i]
		if c == n {
			return false
		}
		if !c.Section && c.Key == n.Key {
			return true
		}
	}
	return false
}

// forProtocol returns what key is for connections of protocol proto:
// its setting in a top-level "protocol proto { }" block, else the global
// one. Both are marked used.
func (t *translator) forProtocol(proto, key string) *Node {
	g := t.get(key)
	var p *Node
	for _, n := range t.filtered(key) {
		f := n.Parent
		if f.Key == "protocol" && f.Parent == t.cfg.Top && hasWord(f.Name, proto) {
			t.used[n] = true
			t.checkFile(n)
			p = n
		}
	}
	if p != nil {
		return p
	}
	return g
}

func hasWord(list, w string) bool {
	for _, x := range strings.Fields(list) {
		if x == w {
			return true
		}
	}
	return false
}

// globalOnly notes key's settings inside blocks, which maildirector, with
// one value for every protocol and address, cannot follow; one equal to
// the global value loses nothing.
func (t *translator) globalOnly(key string, g *Node) {
	for _, n := range t.filtered(key) {
		if t.used[n] {
			continue
		}
		if g != nil && n.Value == g.Value && n.File == g.File {
			t.used[n] = true
			continue
		}
		why := "maildirector has one value for every protocol and address: the global default applies here too"
		if g != nil {
			why = fmt.Sprintf("maildirector has one value for every protocol and address: the global one (%s) applies here too", t.show(g.Pos))
		}
		if key == "disable_plaintext_auth" && n.Parent.Key == "remote" {
			why += "; clients from trusted_networks count as secured and may log in without TLS, if that is what this block is for"
		}
		t.noteNode(n, NeedsDecision, why)
	}
}

// note records a caveat about a position.
func (t *translator) note(pos Pos, key string, kind Kind, why string) {
	t.notes = append(t.notes, Note{Pos: pos, Key: key, Kind: kind, Why: why})
}

// noteNode records why n (and everything inside it) was not translated.
func (t *translator) noteNode(n *Node, kind Kind, why string) {
	t.note(n.Pos, n.Path(), kind, why)
	t.markAll(n)
}

func (t *translator) markAll(n *Node) {
	t.used[n] = true
	for _, c := range n.Children {
		t.markAll(c)
	}
}

// from is a value's comment: where it came from.
func (t *translator) from(ns ...*Node) string {
	var parts []string
	for _, n := range ns {
		if n != nil {
			parts = append(parts, t.show(n.Pos).String())
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "from " + strings.Join(parts, ", ")
}

// show writes a position relative to the main file's directory, the way
// an operator reads conf.d/10-auth.conf.
func (t *translator) show(p Pos) Pos {
	if rel, err := filepath.Rel(t.dir, p.File); err == nil && !strings.HasPrefix(rel, "..") {
		p.File = rel
	}
	return p
}

// leftovers notes every setting and section nothing translated. Inside
// a section that was translated (a login service, a passdb, a protocol
// block) each setting left over is noted on its own.
func (t *translator) leftovers(sec *Node) {
	for _, n := range sec.Children {
		switch {
		case !n.Section:
			if t.used[n] {
				continue
			}
			var kind Kind
			var why string
			if p := n.Parent; p.Key == "service" || p.Key == "inet_listener" {
				kind, why = serviceSettingReason(n.Key)
			} else if n.Key == "ssl_min_protocol" {
				kind, why = minProtocolReason(n.Value)
			} else {
				kind, why = settingReason(n.Key)
			}
			t.noteNode(n, kind, why)
		case t.used[n] || isFilter(n.Key) || (n.Key == "service" && t.isTranslatedService(n.Name)):
			t.used[n] = true
			t.leftovers(n)
		default:
			kind, why := sectionReason(n)
			t.noteNode(n, kind, why)
		}
	}
}

func (t *translator) sortNotes() {
	order := map[string]int{}
	for i, f := range t.cfg.Files {
		if _, ok := order[f]; !ok {
			order[f] = i
		}
	}
	index := func(f string) int {
		if i, ok := order[f]; ok {
			return i
		}
		return len(order) // the dump, after the configuration
	}
	sort.SliceStable(t.notes, func(i, j int) bool {
		a, b := t.notes[i].Pos, t.notes[j].Pos
		if index(a.File) != index(b.File) {
			return index(a.File) < index(b.File)
		}
		return a.Line < b.Line
	})
	// A setting read for several protocols is noted once.
	seen := map[Note]bool{}
	kept := t.notes[:0]
	for _, n := range t.notes {
		if !seen[n] {
			seen[n] = true
			kept = append(kept, n)
		}
	}
	t.notes = kept
}

func (t *translator) head() string {
	return fmt.Sprintf("maildirector configuration imported from %s\n"+
		"by \"maildirector config import\". Each value names the Dovecot line it\n"+
		"came from; what was not translated is listed at the end, with why.\n"+
		"Check it with \"maildirector config check -c FILE\".", t.cfg.Path)
}

func (t *translator) foot() string {
	if len(t.notes) == 0 {
		return "Every setting was translated."
	}
	var b strings.Builder
	b.WriteString("Not translated, or translated with a caveat:")
	for _, n := range t.notes {
		b.WriteString("\n  " + n.String())
	}
	return b.String()
}
