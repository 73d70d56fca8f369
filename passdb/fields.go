// SPDX-License-Identifier: Apache-2.0

package passdb

import (
	"fmt"
	"strings"

	"github.com/maildirector/maildirector/auth"
)

// ParseFields reads Dovecot's default_fields / override_fields syntax:
// space-separated key=value pairs (a bare key is a boolean field),
// values being %variable templates.
func ParseFields(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("empty key in %q", kv)
		}
		if _, err := auth.Expand(v, (&auth.Request{}).Vars(), nil); err != nil {
			return nil, fmt.Errorf("field %s: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// applyFields expands templates into f. When keep is true, fields the
// database already set win (default_fields); otherwise the templates win
// (override_fields).
func applyFields(f auth.Fields, templates map[string]string, req *auth.Request, keep bool) error {
	for k, tmpl := range templates {
		if _, exists := f[k]; keep && exists {
			continue
		}
		v, err := auth.Expand(tmpl, req.Vars(), nil)
		if err != nil {
			return err
		}
		f[k] = v
	}
	return nil
}
