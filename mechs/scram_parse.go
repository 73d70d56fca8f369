// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"bytes"
	"encoding/base64"
	"strings"
	"unicode/utf8"
)

// maxSCRAMMessage bounds a client message: two names of maxField bytes,
// escaped, a nonce and a proof fit with room to spare.
const maxSCRAMMessage = 8 * 1024

// maxSCRAMNonce bounds the client's nonce (clients send 16 to 32 bytes).
const maxSCRAMNonce = 256

// scramFirst is a parsed client-first-message (RFC 5802 section 7).
type scramFirst struct {
	gs2Header string // "n,,", "y,a=bob,", "p=tls-exporter,,": cbind-input's start
	cbFlag    byte   // 'n', 'y' or 'p'
	cbName    string // with 'p'
	authzid   string // decoded
	user      string // decoded
	cnonce    string
	bare      string // client-first-message-bare, for AuthMessage
}

// parseSCRAMClientFirst reads
//
//	client-first-message = gs2-header client-first-message-bare
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
func parseSCRAMClientFirst(msg []byte) (scramFirst, error) {
	var cf scramFirst
	if len(msg) > maxSCRAMMessage || bytes.IndexByte(msg, 0) >= 0 || !utf8.Valid(msg) {
		return cf, ErrMalformed
	}
	s := string(msg)
	flag, rest, ok := strings.Cut(s, ",")
	if !ok {
		return cf, ErrMalformed
	}
	switch {
	case flag == "n" || flag == "y":
		cf.cbFlag = flag[0]
	case strings.HasPrefix(flag, "p=") && isCBName(flag[2:]):
		cf.cbFlag, cf.cbName = 'p', flag[2:]
	default:
		return cf, ErrMalformed
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return cf, ErrMalformed
	}
	if authz != "" {
		v, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return cf, ErrMalformed
		}
		var err error
		if cf.authzid, err = decodeSASLName(v); err != nil {
			return cf, err
		}
	}
	cf.gs2Header, cf.bare = s[:len(s)-len(bare)], bare

	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return cf, ErrMalformed
	}
	// RFC 5802 section 5.1: "m" is reserved for mandatory extensions;
	// a server that does not know them must fail the exchange.
	if strings.HasPrefix(attrs[0], "m=") {
		return cf, ErrMalformed
	}
	n, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return cf, ErrMalformed
	}
	var err error
	if cf.user, err = decodeSASLName(n); err != nil {
		return cf, err
	}
	r, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || r == "" || len(r) > maxSCRAMNonce || !isPrintable(r) {
		return cf, ErrMalformed
	}
	cf.cnonce = r
	// Optional extensions are ignored, but must be well-formed.
	for _, a := range attrs[2:] {
		if !isAttrVal(a) {
			return cf, ErrMalformed
		}
	}
	return cf, nil
}

// scramFinal is a parsed client-final-message.
type scramFinal struct {
	cbind        []byte // decoded c=
	nonce        string
	proof        []byte
	withoutProof string // client-final-message-without-proof, for AuthMessage
}

// parseSCRAMClientFinal reads
//
//	client-final-message-without-proof = channel-binding "," nonce ["," extensions]
//	client-final-message = client-final-message-without-proof "," proof
//
// with a proof of size bytes.
func parseSCRAMClientFinal(msg []byte, size int) (scramFinal, error) {
	var cf scramFinal
	if len(msg) > maxSCRAMMessage || bytes.IndexByte(msg, 0) >= 0 || !utf8.Valid(msg) {
		return cf, ErrMalformed
	}
	s := string(msg)
	i := strings.LastIndex(s, ",p=")
	if i < 0 {
		return cf, ErrMalformed
	}
	cf.withoutProof = s[:i]
	proof, err := base64.StdEncoding.Strict().DecodeString(s[i+3:])
	if err != nil || len(proof) != size {
		return cf, ErrMalformed
	}
	cf.proof = proof
	attrs := strings.Split(cf.withoutProof, ",")
	if len(attrs) < 2 {
		return cf, ErrMalformed
	}
	c, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok || c == "" {
		return cf, ErrMalformed
	}
	if cf.cbind, err = base64.StdEncoding.Strict().DecodeString(c); err != nil {
		return cf, ErrMalformed
	}
	r, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || r == "" || !isPrintable(r) {
		return cf, ErrMalformed
	}
	cf.nonce = r
	for _, a := range attrs[2:] {
		if !isAttrVal(a) {
			return cf, ErrMalformed
		}
	}
	return cf, nil
}

// decodeSASLName undoes RFC 5802 section 5.1's escaping of saslname: "=2C"
// is ",", "=3D" is "=", and any other "=" is an error. SASLprep is not
// applied, as in Dovecot: the name is looked up as sent.
func decodeSASLName(s string) (string, error) {
	if s == "" {
		return "", ErrMalformed
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '=' {
			b.WriteByte(c)
			continue
		}
		if i+3 > len(s) {
			return "", ErrMalformed
		}
		switch strings.ToUpper(s[i+1 : i+3]) {
		case "2C":
			b.WriteByte(',')
		case "3D":
			b.WriteByte('=')
		default:
			return "", ErrMalformed
		}
		i += 2
	}
	if b.Len() > maxField {
		return "", ErrMalformed
	}
	return b.String(), nil
}

// isPrintable: RFC 5802's printable, %x21-2B / %x2D-7E (no comma).
func isPrintable(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// isCBName: cb-name = 1*(ALPHA / DIGIT / "." / "-").
func isCBName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isAlpha(c) || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// isAttrVal: attr-val = ALPHA "=" value, value = 1*value-char (anything
// but NUL and comma, which the caller has split on).
func isAttrVal(s string) bool {
	return len(s) >= 3 && isAlpha(s[0]) && s[1] == '='
}

func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
