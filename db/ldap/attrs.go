// SPDX-License-Identifier: Apache-2.0

package ldap

import (
	"fmt"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/maildirector/maildirector/auth"
)

// attrMap is a parsed pass_attrs / user_attrs list: which LDAP attributes
// to fetch and how they become fields.
type attrMap struct {
	fetch []string // attributes to request
	items []attrItem
}

// attrItem is one list entry: "ldapAttr=field", "ldapAttr=field=template",
// "=field=template", "ldapAttr" (field named like the attribute) or
// "!ldapAttr" (fetched for templates, not emitted).
type attrItem struct {
	attr     string // "" for "=field=template"
	field    string
	template string
	hasTmpl  bool
}

// parseAttrs parses Dovecot's attribute list grammar.
func parseAttrs(list string) (*attrMap, error) {
	m := &attrMap{}
	seen := map[string]bool{}
	want := func(a string) {
		if a != "" && !seen[strings.ToLower(a)] {
			seen[strings.ToLower(a)] = true
			m.fetch = append(m.fetch, a)
		}
	}
	for _, raw := range strings.Split(list, ",") {
		item := strings.TrimSpace(raw)
		if item == "" {
			continue
		}
		if strings.HasPrefix(item, "@") || strings.Contains(item, "%{ldap_ptr:") {
			return nil, fmt.Errorf("%q: sub-queries (@name, %%{ldap_ptr}) are not supported", item)
		}
		if a, ok := strings.CutPrefix(item, "!"); ok {
			want(a)
			continue
		}
		attr, rest, hasField := strings.Cut(item, "=")
		it := attrItem{attr: attr, field: attr}
		if hasField {
			it.field, it.template, it.hasTmpl = strings.Cut(rest, "=")
		}
		if it.field == "" {
			return nil, fmt.Errorf("%q: empty field name", item)
		}
		if it.attr == "" && !it.hasTmpl {
			// "=field" sets a present, empty field (a boolean).
			it.hasTmpl = true
		}
		want(it.attr)
		if it.hasTmpl {
			refs, err := templateAttrs(it.template)
			if err != nil {
				return nil, fmt.Errorf("%q: %w", item, err)
			}
			for _, r := range refs {
				want(r)
			}
		}
		m.items = append(m.items, it)
	}
	return m, nil
}

// templateAttrs lists the attributes a template refers to with
// %{ldap:attr} or %{ldap:attr:default}, and checks its syntax.
func templateAttrs(tmpl string) ([]string, error) {
	var refs []string
	_, err := auth.Expand(tmpl, func(name string) (string, bool) {
		if a, ok := strings.CutPrefix(name, "ldap:"); ok {
			a, _, _ = strings.Cut(a, ":")
			refs = append(refs, a)
			return "", true
		}
		if name == "$" {
			return "", true
		}
		return (&auth.Request{}).Vars()(name)
	}, nil)
	return refs, err
}

// fields turns an entry into fields, in list order.
func (m *attrMap) fields(e *goldap.Entry, req *auth.Request) (auth.Fields, error) {
	out := auth.Fields{}
	for _, it := range m.items {
		var value string
		if it.attr != "" {
			vals := e.GetEqualFoldAttributeValues(it.attr)
			if len(vals) == 0 {
				continue // "attr=field[=template]" only when the attribute exists
			}
			value = vals[0]
		}
		if it.hasTmpl {
			v, err := expandEntry(it.template, e, req, value)
			if err != nil {
				return nil, err
			}
			value = v
		}
		out[it.field] = value
	}
	return out, nil
}

// expandEntry expands a template with the request's variables, the
// entry's %{ldap:attr[:default]} and %$ (the item's own attribute value).
func expandEntry(tmpl string, e *goldap.Entry, req *auth.Request, self string) (string, error) {
	reqVars := req.Vars()
	return auth.Expand(tmpl, func(name string) (string, bool) {
		if name == "$" {
			return self, true
		}
		if a, ok := strings.CutPrefix(name, "ldap:"); ok {
			a, def, _ := strings.Cut(a, ":")
			if vals := e.GetEqualFoldAttributeValues(a); len(vals) > 0 {
				return vals[0], true
			}
			return def, true
		}
		return reqVars(name)
	}, nil)
}

// escape is Dovecot's ldap_escape(), used for %variables in filters, DNs
// and bases: the characters *,\#+<>;"()= and space, control bytes and every
// byte >= 0x80 become \XX. That covers both RFC 4515 filter and RFC 4514
// DN escaping for the values users can choose.
func escape(s string) string {
	const special = "*,\\#+<>;\"()= "
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || strings.IndexByte(special, c) >= 0 {
			fmt.Fprintf(&b, "\\%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// expandEscaped expands a filter, DN or base template with escaped values.
func expandEscaped(tmpl string, req *auth.Request) (string, error) {
	return auth.Expand(tmpl, req.Vars(), escape)
}
