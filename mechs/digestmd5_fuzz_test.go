// SPDX-License-Identifier: Apache-2.0

package mechs

import (
	"crypto/rand"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

// FuzzDigestMD5 feeds digest-responses to a server whose nonce is
// "fuzznonce": none may succeed, since the fuzzer cannot know alice's
// password.
func FuzzDigestMD5(f *testing.F) {
	db := &fuzzPassdb{stored: "{PLAIN}" + rand.Text()}
	f.Fuzz(func(t *testing.T, resp []byte) {
		s := newDigestWithNonce(fuzzInfo(db), "fuzznonce")
		s.Next(nil)
		s.Next(resp)
		s.Next([]byte{})
		if s.Outcome().Auth.Status == auth.StatusOK {
			t.Fatalf("success without the password: %q", resp)
		}
	})
}
