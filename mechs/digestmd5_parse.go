// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxDigestResponse: "The size of a digest-response is less than 4096
// bytes" (RFC 2831 section 2.1.2).
const maxDigestResponse = 4096

// digestResp is a parsed digest-response.
type digestResp struct {
	username, realm, authzid string
	cnonce                   string
	nc                       string // as sent: it is hashed
	qop                      string // as sent, "auth" when absent
	digestURI                string // "" when absent
	response                 []byte
}

// parseDigestResponse reads RFC 2831 section 2.1.2's digest-response and
// checks it the way Dovecot does: username, nonce (this exchange's),
// cnonce and response are required; nc must be 1 (no subsequent
// authentication) and defaults to it; qop must be "auth" (no security
// layers) and defaults to it; digest-uri, when present, must have a "/"
// (Dovecot checks neither serv-type nor host); charset must be utf-8;
// unknown directives are ignored. Unlike Dovecot, every directive may
// appear only once (the RFC's rule).
func parseDigestResponse(msg []byte, snonce string) (digestResp, error) {
	var r digestResp
	if len(msg) == 0 || len(msg) >= maxDigestResponse || !utf8.Valid(msg) {
		return r, ErrMalformed
	}
	kv, err := splitDigestDirectives(string(msg))
	if err != nil {
		return r, err
	}
	var ok bool
	if r.username, ok = kv["username"]; !ok || r.username == "" || len(r.username) > maxField {
		return r, ErrMalformed
	}
	if kv["nonce"] != snonce {
		return r, ErrMalformed
	}
	if r.cnonce = kv["cnonce"]; r.cnonce == "" {
		return r, ErrMalformed
	}
	r.realm = kv["realm"]
	if len(r.realm) > maxField {
		return r, ErrMalformed
	}
	if v, ok := kv["authzid"]; ok {
		if v == "" || len(v) > maxField {
			return r, ErrMalformed
		}
		r.authzid = v
	}
	r.nc = "00000001"
	if v, ok := kv["nc"]; ok {
		if n, err := strconv.ParseUint(v, 10, 32); err != nil || n != 1 || len(v) > 8 {
			return r, ErrMalformed // nc > 1: subsequent authentication
		}
		r.nc = v
	}
	r.qop = "auth"
	if v, ok := kv["qop"]; ok {
		if !strings.EqualFold(v, "auth") {
			return r, ErrMalformed // auth-int, auth-conf: no security layers
		}
		r.qop = v
	}
	if v, ok := kv["digest-uri"]; ok {
		if !strings.Contains(v, "/") {
			return r, ErrMalformed
		}
		r.digestURI = v
	}
	if v, ok := kv["charset"]; ok && !strings.EqualFold(v, "utf-8") {
		return r, ErrMalformed
	}
	if v, ok := kv["maxbuf"]; ok {
		if n, err := strconv.ParseUint(v, 10, 32); err != nil || n == 0 {
			return r, ErrMalformed
		}
	}
	v := kv["response"]
	if len(v) != 32 {
		return r, ErrMalformed
	}
	if r.response, err = hex.DecodeString(v); err != nil {
		return r, ErrMalformed
	}
	return r, nil
}

// splitDigestDirectives splits RFC 2831's 1#( token "=" ( token |
// quoted-string ) ) into lower-cased keys and unquoted values. Empty list
// elements and linear white space around elements are allowed; a repeated
// key is not.
func splitDigestDirectives(s string) (map[string]string, error) {
	kv := make(map[string]string)
	i := 0
	skipLWS := func() {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
	}
	for {
		skipLWS()
		if i == len(s) {
			return kv, nil
		}
		if s[i] == ',' {
			i++
			continue
		}
		start := i
		for i < len(s) && isDigestToken(s[i]) {
			i++
		}
		key := strings.ToLower(s[start:i])
		skipLWS()
		if key == "" || i == len(s) || s[i] != '=' {
			return nil, ErrMalformed
		}
		i++
		skipLWS()
		var val string
		if i < len(s) && s[i] == '"' {
			var b strings.Builder
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++ // quoted-pair
				}
				if s[i] < 0x20 && s[i] != '\t' || s[i] == 0x7f {
					return nil, ErrMalformed
				}
				b.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, ErrMalformed // unterminated
			}
			i++
			val = b.String()
		} else {
			// A token, loosely: Dovecot takes anything up to the
			// comma, and clients send digest-uri=imap/host unquoted.
			start := i
			for i < len(s) && s[i] > 0x20 && s[i] != 0x7f && s[i] != ',' && s[i] != '"' && s[i] != '\\' {
				i++
			}
			val = s[start:i]
		}
		if _, dup := kv[key]; dup {
			return nil, ErrMalformed
		}
		kv[key] = val
		skipLWS()
		if i < len(s) && s[i] != ',' {
			return nil, ErrMalformed
		}
	}
}

// isDigestToken: RFC 2616's token characters.
func isDigestToken(c byte) bool {
	return c > 0x20 && c < 0x7f && !strings.ContainsRune(`()<>@,;:\"/[]?={}`, rune(c))
}
