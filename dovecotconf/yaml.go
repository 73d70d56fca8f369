// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ymap builds a YAML mapping in the order its keys are set, so that the
// output reads like the README's configuration reference, not in the
// order Go's map iteration or a struct would give.
type ymap struct{ node *yaml.Node }

func newMap() *ymap { return &ymap{node: &yaml.Node{Kind: yaml.MappingNode}} }

func (m *ymap) empty() bool { return m == nil || len(m.node.Content) == 0 }

func (m *ymap) set(key string, v *yaml.Node) {
	m.node.Content = append(m.node.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// add sets key to a sub-mapping, unless that is empty.
func (m *ymap) add(key string, sub *ymap) {
	if !sub.empty() {
		m.set(key, sub.node)
	}
}

// merge appends other's keys.
func (m *ymap) merge(other *ymap) {
	if !other.empty() {
		m.node.Content = append(m.node.Content, other.node.Content...)
	}
}

func (m *ymap) str(key, value, comment string) { m.set(key, scalar("!!str", value, comment)) }

func (m *ymap) boolean(key string, v bool, comment string) {
	m.set(key, scalar("!!bool", strconv.FormatBool(v), comment))
}

func (m *ymap) integer(key string, v int, comment string) {
	m.set(key, scalar("!!int", strconv.Itoa(v), comment))
}

// list sets key to a sequence of strings, each with its comment.
func (m *ymap) list(key string, items []string, comments []string) {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for i, it := range items {
		c := ""
		if i < len(comments) {
			c = comments[i]
		}
		seq.Content = append(seq.Content, scalar("!!str", it, c))
	}
	m.set(key, seq)
}

// maps sets key to a sequence of mappings.
func (m *ymap) maps(key string, items []*ymap) {
	seq := &yaml.Node{Kind: yaml.SequenceNode}
	for _, it := range items {
		seq.Content = append(seq.Content, it.node)
	}
	m.set(key, seq)
}

func scalar(tag, value, comment string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: strings.ToValidUTF8(value, "\uFFFD")}
	if comment != "" {
		n.LineComment = "# " + commentText(comment)
	}
	return n
}

// commentText makes text safe for a one-line YAML comment: the encoder
// panics on invalid UTF-8, and a line break would end the comment.
func commentText(s string) string {
	return strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

func commentLines(s string) string {
	lines := strings.Split(s, "\n")
	for i := range lines {
		lines[i] = commentText(lines[i])
	}
	return strings.Join(lines, "\n")
}

// encode writes the document with a head and a foot comment.
func encode(root *ymap, head, foot string) (out []byte, err error) {
	doc := &yaml.Node{Kind: yaml.DocumentNode, Content: []*yaml.Node{root.node}, HeadComment: commentLines(head), FootComment: commentLines(foot)}
	defer func() {
		// The encoder reports some malformed input by panicking.
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("writing YAML: %v", r)
		}
	}()
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
