// SPDX-License-Identifier: Apache-2.0

package password

import (
	"encoding/base64"
	"encoding/hex"
)

// dataEncoding says how a stored value's data encodes its raw bytes.
type dataEncoding int

const (
	encNone   dataEncoding = iota // the data is the raw value (crypt strings, PLAIN)
	encHex                        // hexadecimal, either case
	encBase64                     // standard base64 with padding
)

func (e dataEncoding) String() string {
	switch e {
	case encHex:
		return "HEX"
	case encBase64:
		return "BASE64"
	}
	return ""
}

// decode turns stored data into the raw value s works on. Without an
// explicit ".ENC" suffix, a fixed-length digest may be stored in either hex
// or base64 whatever its default (Dovecot accepts "{SHA}" followed by 40 hex
// digits and "{PLAIN-MD5}" followed by base64): the length tells which.
func (s scheme) decode(data string, enc dataEncoding, explicit bool) ([]byte, error) {
	if !explicit && enc != encNone && s.rawLen != 0 {
		enc = encBase64
		if len(data) == 2*s.rawLen && isHex(data) {
			enc = encHex
		}
	}
	var raw []byte
	var err error
	switch enc {
	case encNone:
		raw = []byte(data)
	case encHex:
		raw, err = hex.DecodeString(data)
		if err != nil {
			return nil, errf(ErrMalformed, s.name, "data is not valid hex")
		}
	case encBase64:
		raw, err = base64.StdEncoding.DecodeString(data)
		if err != nil {
			return nil, errf(ErrMalformed, s.name, "data is not valid base64")
		}
	}
	if s.rawLen != 0 && len(raw) != s.rawLen {
		return nil, errf(ErrMalformed, s.name, "decoded length %d, want %d", len(raw), s.rawLen)
	}
	return raw, nil
}

// encode is decode's inverse, for Generate.
func encode(raw []byte, enc dataEncoding) string {
	switch enc {
	case encHex:
		return hex.EncodeToString(raw)
	case encBase64:
		return base64.StdEncoding.EncodeToString(raw)
	}
	return string(raw)
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
