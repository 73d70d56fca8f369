// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/subtle"
	"strconv"
)

// plainHash is PLAIN, CLEAR and CLEARTEXT: the password itself.
func plainHash(plain string, _ Params) ([]byte, error) {
	return []byte(plain), nil
}

// verifyPlainTrunc checks PLAIN-TRUNC's "<length>-<password>": a password
// stored truncated to <length> bytes by some old system matches any password
// that starts with it; otherwise the whole password must match. Dovecot
// refuses data without the "<length>-" prefix, so do we.
func verifyPlainTrunc(raw []byte, plain string, _ Params) (bool, error) {
	i := 0
	for i < len(raw) && raw[i] >= '0' && raw[i] <= '9' {
		i++
	}
	if i == 0 || i == len(raw) || raw[i] != '-' {
		return false, errf(ErrMalformed, "PLAIN-TRUNC", `missing "<length>-" prefix`)
	}
	n, err := strconv.Atoi(string(raw[:i]))
	if err != nil {
		return false, errf(ErrMalformed, "PLAIN-TRUNC", "bad length")
	}
	stored := raw[i+1:]
	if len(stored) == n && len(plain) >= n {
		return subtle.ConstantTimeCompare(stored, []byte(plain[:n])) == 1, nil
	}
	return subtle.ConstantTimeCompare(stored, []byte(plain)) == 1, nil
}

// generatePlainTrunc writes "<length>-<password>". doveadm 2.3.19 writes the
// bare password, which its own verify then refuses; we write the form that
// verifies. The length is the truncation limit, one more than the
// password: it was not truncated, so only the whole password matches
// (with the password's own length, any password starting with it would,
// and with an empty one, every password).
func generatePlainTrunc(plain string, _ Params) ([]byte, error) {
	return []byte(strconv.Itoa(len(plain)+1) + "-" + plain), nil
}
