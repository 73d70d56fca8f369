// SPDX-License-Identifier: Apache-2.0

package auth

import (
	"sort"
	"strings"
	"time"
)

// Status is a definitive answer from a passdb or userdb. A database that
// could not produce an answer returns an error instead (see Kind).
type Status uint8

const (
	// StatusOK: the user exists and the credentials are valid (or, for a
	// lookup without password, the user exists).
	StatusOK Status = iota + 1
	// StatusUserUnknown: the user is not in this database.
	StatusUserUnknown
	// StatusPasswordMismatch: the user exists and the password is wrong.
	StatusPasswordMismatch
	// StatusUserDisabled: the user exists and must not log in (nologin, deny).
	StatusUserDisabled
)

// String returns the status as Dovecot's logs spell it.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "ok"
	case StatusUserUnknown:
		return "unknown user"
	case StatusPasswordMismatch:
		return "password mismatch"
	case StatusUserDisabled:
		return "user disabled"
	}
	return "invalid status"
}

// Result is what a database concluded about a Request.
type Result struct {
	Status Status
	// User is the canonical user name; databases may change it with the
	// "user" extra field. Empty means unchanged (Request.User). The passdb
	// and userdb chains always set it, on negative answers too: the name
	// after auth.default_realm and auth.username_format (or as a database
	// changed it), the one the director hashes and the logs show.
	User string
	// Master is the master user who authenticated on User's behalf
	// ("user*master" or a SASL authorization identity), "" for none.
	Master string
	// Fields holds Dovecot's extra fields (proxy, host, port, destuser,
	// master, pass, nologin, reason, ...). Boolean fields are present with
	// an empty value or "y".
	Fields Fields
}

// Fields is a set of Dovecot passdb/userdb extra fields.
type Fields map[string]string

// Has reports whether the field is present. In Dovecot a boolean field is
// true when present, whatever its value (`proxy=` still means proxy), except
// for the explicit negative values "n", "no", "false" and "0".
func (f Fields) Has(name string) bool {
	v, ok := f[name]
	if !ok {
		return false
	}
	switch strings.ToLower(v) {
	case "n", "no", "false", "0":
		return false
	}
	return true
}

// Get returns the field's value, "" when absent.
func (f Fields) Get(name string) string { return f[name] }

// Clone returns a copy that can be changed without touching f.
func (f Fields) Clone() Fields {
	out := make(Fields, len(f))
	for k, v := range f {
		out[k] = v
	}
	return out
}

// String renders the fields as Dovecot's tab-separated "key=value" list,
// sorted, with the password fields ("pass", "password") masked.
func (f Fields) String() string {
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		if k == "pass" || k == "password" {
			b.WriteString("<hidden>")
		} else {
			b.WriteString(f[k])
		}
	}
	return b.String()
}

// Outcome names how a database answered, for metrics labels: "ok",
// "unknown", "mismatch", "disabled", or, when it could not answer,
// "tempfail" or "internal".
func Outcome(res Result, err error) string {
	if err != nil {
		if KindOf(err) == KindInternal {
			return "internal"
		}
		return "tempfail"
	}
	switch res.Status {
	case StatusOK:
		return "ok"
	case StatusUserUnknown:
		return "unknown"
	case StatusPasswordMismatch:
		return "mismatch"
	case StatusUserDisabled:
		return "disabled"
	}
	return "internal"
}

// ObserveFunc is told how long one database of a chain took to answer
// and how (Outcome), for metrics: the entry's name and its driver.
type ObserveFunc func(name, driver, outcome string, d time.Duration)
