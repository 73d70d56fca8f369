// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/md5"
	"hash"
	"strings"
)

// digest returns the hash function of an unsalted digest scheme
// (PLAIN-MD4, PLAIN-MD5, LDAP-MD5, SHA, SHA1, SHA256, SHA512): the digest of
// the password.
func digest(newHash func() hash.Hash) func(string, Params) ([]byte, error) {
	return func(plain string, _ Params) ([]byte, error) {
		h := newHash()
		h.Write([]byte(plain))
		return h.Sum(nil), nil
	}
}

// digestMD5Hash is DIGEST-MD5's stored secret, MD5("user:realm:password")
// (RFC 2831 section 2.1.2.1's A1 before the nonces). Dovecot takes the realm
// from the user name's last "@"; Params.Realm overrides that.
func digestMD5Hash(plain string, p Params) ([]byte, error) {
	user, realm := p.User, p.Realm
	if user == "" {
		return nil, errf(ErrInput, "DIGEST-MD5", "needs the user name")
	}
	if realm == "" {
		if i := strings.LastIndexByte(user, '@'); i >= 0 {
			user, realm = user[:i], user[i+1:]
		}
	}
	sum := md5.Sum([]byte(user + ":" + realm + ":" + plain))
	return sum[:], nil
}
