// SPDX-License-Identifier: Apache-2.0

package ldap

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"
)

// Settings are the dovecot-ldap.conf.ext keys maildirector acts on, with
// Dovecot 2.3's defaults (src/auth/db-ldap.c).
type Settings struct {
	URIs           []string
	DN, DNPass     string
	AuthBind       bool
	AuthBindUserDN string
	StartTLS       bool // "tls = yes" means STARTTLS in Dovecot
	TLSCACertFile  string
	TLSCACertDir   string
	TLSCertFile    string
	TLSKeyFile     string
	TLSRequireCert string // never, allow, try, demand, hard
	Deref          int
	Scope          int
	Base           string
	UserAttrs      string
	UserFilter     string
	PassAttrs      string
	PassFilter     string
	IterateAttrs   string
	IterateFilter  string
	// DefaultPassScheme applies to stored passwords without {SCHEME}.
	DefaultPassScheme string
	// Ignored lists keys that were accepted but have no effect here, so
	// that the caller can say so in the log.
	Ignored []string
}

// ignoredKeys are 2.3 keys that make no sense for maildirector: they tune
// libldap or Dovecot's process model, not what a lookup answers.
var ignoredKeys = map[string]string{
	"debug_level":            "libldap debugging; use log.level: debug",
	"ldaprc_path":            "libldap configuration file",
	"blocking":               "Dovecot auth-worker processes; lookups here are concurrent",
	"userdb_warning_disable": "Dovecot-internal warning switch",
	"tls_cipher_suite":       "OpenSSL cipher string; Go's TLS defaults apply",
}

// ParseSettings turns the key/value pairs of a dovecot-ldap.conf.ext file
// (or the same keys inline) into Settings. Unknown keys are errors, as in
// Dovecot; keys that do nothing here are listed in Settings.Ignored.
func ParseSettings(kv map[string]string) (*Settings, error) {
	s := &Settings{
		Scope:             goldap.ScopeWholeSubtree,
		Deref:             goldap.NeverDerefAliases,
		UserAttrs:         "homeDirectory=home,uidNumber=uid,gidNumber=gid",
		UserFilter:        "(&(objectClass=posixAccount)(uid=%u))",
		PassAttrs:         "uid=user,userPassword=password",
		PassFilter:        "(&(objectClass=posixAccount)(uid=%u))",
		IterateAttrs:      "uid=user",
		IterateFilter:     "(objectClass=posixAccount)",
		DefaultPassScheme: "CRYPT",
		TLSRequireCert:    "demand",
	}
	var errs []error
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := kv[k]
		var err error
		switch k {
		case "hosts":
			for _, h := range strings.Fields(v) {
				if _, _, e := net.SplitHostPort(h); e != nil {
					h = net.JoinHostPort(h, "389")
				}
				s.URIs = append(s.URIs, "ldap://"+h)
			}
		case "uris":
			s.URIs = append(s.URIs, strings.Fields(v)...)
		case "dn":
			s.DN = v
		case "dnpass":
			s.DNPass = v
		case "auth_bind":
			s.AuthBind, err = parseBool(v)
		case "auth_bind_userdn":
			s.AuthBindUserDN = v
		case "tls":
			s.StartTLS, err = parseBool(v)
		case "tls_ca_cert_file":
			s.TLSCACertFile = v
		case "tls_ca_cert_dir":
			s.TLSCACertDir = v
		case "tls_cert_file":
			s.TLSCertFile = v
		case "tls_key_file":
			s.TLSKeyFile = v
		case "tls_require_cert":
			switch v {
			case "never", "allow", "try", "demand", "hard":
				s.TLSRequireCert = v
			default:
				err = fmt.Errorf("want never, allow, try, demand or hard, not %q", v)
			}
		case "deref":
			s.Deref, err = lookupName(v, map[string]int{"never": goldap.NeverDerefAliases, "searching": goldap.DerefInSearching,
				"finding": goldap.DerefFindingBaseObj, "always": goldap.DerefAlways})
		case "scope":
			s.Scope, err = lookupName(v, map[string]int{"base": goldap.ScopeBaseObject, "onelevel": goldap.ScopeSingleLevel,
				"subtree": goldap.ScopeWholeSubtree})
		case "base":
			s.Base = v
		case "ldap_version":
			if v != "3" {
				err = errors.New("only LDAP version 3 is supported")
			}
		case "user_attrs":
			s.UserAttrs = v
		case "user_filter":
			s.UserFilter = v
		case "pass_attrs":
			s.PassAttrs = v
		case "pass_filter":
			s.PassFilter = v
		case "iterate_attrs":
			s.IterateAttrs = v
		case "iterate_filter":
			s.IterateFilter = v
		case "default_pass_scheme":
			s.DefaultPassScheme = v
		case "sasl_bind":
			var on bool
			if on, err = parseBool(v); err == nil && on {
				err = errors.New("SASL binds are not supported; use dn/dnpass")
			}
		case "sasl_mech", "sasl_realm", "sasl_authz_id":
			s.Ignored = append(s.Ignored, k+" (sasl_bind is not supported)")
		default:
			if why, ok := ignoredKeys[k]; ok {
				s.Ignored = append(s.Ignored, k+" ("+why+")")
				continue
			}
			err = errors.New("unknown setting")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
		}
	}
	if len(s.URIs) == 0 {
		errs = append(errs, errors.New("hosts or uris: no LDAP server configured"))
	}
	for _, u := range s.URIs {
		if !strings.HasPrefix(u, "ldap://") && !strings.HasPrefix(u, "ldaps://") && !strings.HasPrefix(u, "ldapi://") {
			errs = append(errs, fmt.Errorf("uris: %q is not an ldap://, ldaps:// or ldapi:// URI", u))
		}
	}
	if s.Base == "" && s.AuthBindUserDN == "" {
		errs = append(errs, errors.New("base: not set"))
	}
	return s, errors.Join(errs...)
}

func parseBool(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "yes", "y", "true", "1":
		return true, nil
	case "no", "n", "false", "0", "":
		return false, nil
	}
	return false, fmt.Errorf("want yes or no, not %q", v)
}

func lookupName(v string, m map[string]int) (int, error) {
	if n, ok := m[strings.ToLower(v)]; ok {
		return n, nil
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	return 0, fmt.Errorf("want one of %s, not %q", strings.Join(names, ", "), v)
}
