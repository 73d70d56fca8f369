// SPDX-License-Identifier: Apache-2.0

package password

import "crypto/rand"

// cryptAlphabet is crypt(3)'s 64 salt and digest characters, in value order.
const cryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// alnumAlphabet is what Dovecot draws PBKDF2 salts from.
const alnumAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// randomBytes returns n bytes from crypto/rand, which does not fail (Go
// 1.24+: it crashes the program instead of returning short reads).
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// randomString returns n characters drawn uniformly from alphabet (at most
// 256 characters), rejecting bytes past the largest multiple of its length.
func randomString(n int, alphabet string) string {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	for len(out) < n {
		for _, b := range randomBytes(n) {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
