// SPDX-License-Identifier: Apache-2.0

package password

import "strings"

// Params carries what some schemes need besides the password.
type Params struct {
	// User is the login name. DIGEST-MD5 hashes "user:realm:password";
	// when Realm is empty, User is split at its last "@" into user and
	// realm, as Dovecot (and `doveadm pw -u user@realm`) does.
	User string
	// Realm, when set, is DIGEST-MD5's realm and User is taken whole.
	Realm string
	// DefaultScheme is the scheme of a stored value without a "{SCHEME}"
	// prefix: Dovecot's default_pass_scheme, whose default depends on the
	// passdb driver (CRYPT for LDAP and passwd-file, MD5 for SQL), so the
	// caller passes it. Empty means PLAIN. It may carry a ".ENC" suffix.
	DefaultScheme string
	// Rounds is Generate's cost, like `doveadm pw -r`: bcrypt's cost for
	// BLF-CRYPT and CRYPT, rounds for SHA256-CRYPT, SHA512-CRYPT and PBKDF2,
	// iterations for SCRAM-*, t for ARGON2*. Zero means Dovecot's default;
	// other schemes ignore it. Verify reads the cost from the stored value.
	Rounds int
}

// Verify reports whether plain matches stored, a "{SCHEME}data" value or bare
// data in p.DefaultScheme. (false, nil) is a mismatch. An error means the
// stored value cannot be checked (unknown scheme, malformed data, over a work
// limit, unsupported crypt(3) method); callers must treat it as an internal
// failure, never as a wrong password.
func Verify(stored, plain string, p Params) (bool, error) {
	h, err := Parse(stored, p)
	if err != nil {
		return false, err
	}
	return h.Verify(plain)
}

// Stored is a stored password parsed once: its scheme and decoded value,
// so that a caller can ask how costly a check is before it makes one.
type Stored struct {
	s   scheme
	raw []byte
	p   Params
}

// Parse reads stored ("{SCHEME}data", or bare data in p.DefaultScheme).
// Its errors are Verify's.
func Parse(stored string, p Params) (Stored, error) {
	s, raw, err := resolve(stored, p)
	if err != nil {
		return Stored{}, err
	}
	return Stored{s: s, raw: raw, p: p}, nil
}

// Costly reports whether checking a password against h takes real work:
// key stretching (the *-CRYPT schemes but DES and MD5, PBKDF2, SCRAM,
// OTP) or memory (ARGON2). Callers bound how many such checks run at once;
// a fast salted digest need not queue behind them.
func (h Stored) Costly() bool { return h.s.costly }

// Verify reports whether plain matches, as the package's Verify does.
func (h Stored) Verify(plain string) (bool, error) {
	if len(plain) > MaxPlainLen {
		return false, nil
	}
	return h.s.check(h.raw, plain, h.p)
}

// Generate returns "{SCHEME}..." for plain, with a fresh salt from
// crypto/rand where the scheme has one, and Dovecot 2.3.19's default cost
// unless p.Rounds says otherwise. scheme may carry a ".ENC" suffix
// ("SHA512.HEX"); the prefix is written as given, upper-cased, like doveadm.
func Generate(scheme, plain string, p Params) (string, error) {
	s, enc, _, err := lookup(scheme)
	if err != nil {
		return "", err
	}
	if len(plain) > MaxPlainLen {
		return "", errf(ErrInput, s.name, "password longer than %d bytes", MaxPlainLen)
	}
	raw, err := s.newValue(plain, p)
	if err != nil {
		return "", err
	}
	return "{" + strings.ToUpper(scheme) + "}" + encode(raw, enc), nil
}

// Split parses a stored password into its canonical scheme name ("SHA512-CRYPT"),
// its encoding suffix ("HEX", "BASE64", or "" for the scheme's default) and
// its data. A value without a "{SCHEME}" prefix is in defaultScheme (""
// meaning PLAIN), except that a bare "$1$salt$hash" is MD5-CRYPT, as in
// Dovecot. The only error is ErrUnknownScheme.
func Split(stored, defaultScheme string) (scheme, encoding, data string, err error) {
	name, data := splitPrefix(stored, defaultScheme)
	s, enc, explicit, err := lookup(name)
	if err != nil {
		return "", "", "", err
	}
	if explicit {
		encoding = enc.String()
	}
	return s.name, encoding, data, nil
}

// resolve finds stored's scheme and decodes its data to the raw value.
func resolve(stored string, p Params) (scheme, []byte, error) {
	name, data := splitPrefix(stored, p.DefaultScheme)
	s, enc, explicit, err := lookup(name)
	if err != nil {
		return scheme{}, nil, err
	}
	raw, err := s.decode(data, enc, explicit)
	return s, raw, err
}

// splitPrefix separates the scheme name from the data, with Dovecot's
// password_get_scheme rules: "$1$<salt>$<hash>[$<ignored>]" is MD5-CRYPT
// (anything from a third "$" on is dropped); "{NAME}data" names its scheme;
// anything else, including a "{" without "}", is data in the default scheme.
func splitPrefix(stored, defaultScheme string) (name, data string) {
	if rest, ok := strings.CutPrefix(stored, "$1$"); ok {
		if i := strings.IndexByte(rest, '$'); i >= 0 {
			if j := strings.IndexByte(rest[i+1:], '$'); j >= 0 {
				return "MD5-CRYPT", stored[:3+i+1+j]
			}
			return "MD5-CRYPT", stored
		}
	}
	if strings.HasPrefix(stored, "{") {
		if i := strings.IndexByte(stored, '}'); i >= 0 {
			return stored[1:i], stored[i+1:]
		}
	}
	if defaultScheme == "" {
		defaultScheme = "PLAIN"
	}
	return defaultScheme, stored
}
