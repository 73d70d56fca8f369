// SPDX-License-Identifier: Apache-2.0

// Package dovecotconf reads a Dovecot 2.3 configuration the way Dovecot's
// config parser does (!include and !include_try with globs, "<file"
// values, $variables, quoting, comments, continued lines, nested sections)
// into a tree that remembers the file and line of every setting, and
// translates a Director's configuration into maildirector's YAML
// ("maildirector config import").
//
// The translation is a migration aid, not an emulation: what maildirector
// has an equivalent for is written out with a comment naming its source
// line; everything else is listed, with its file and line, as not needed
// on a gateway, not supported, or needing a decision.
//
// It may import config only: a translation is checked by loading it.
package dovecotconf
