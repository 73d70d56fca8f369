// SPDX-License-Identifier: Apache-2.0

package password

import (
	"crypto/md5"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/md4"
)

// testPasswords: ASCII, spaces, non-ASCII UTF-8, and longer than bcrypt's 72
// bytes.
var testPasswords = []string{
	"password",
	"correct horse battery staple",
	"pässwörd €uro 密码",
	strings.Repeat("long-", 20),
}

// doveadm returns the path of doveadm, skipping the test when it is missing,
// unless CI is set: there, a missing doveadm is a failure.
func doveadm(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("doveadm")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("doveadm not found and CI is set: install dovecot-core (%v)", err)
		}
		t.Skipf("doveadm not found (install dovecot-core to check our hashes against Dovecot): %v", err)
	}
	return path
}

// doveadmVerifies runs `doveadm pw -t hash -u user -p plain`.
func doveadmVerifies(t *testing.T, bin, hash, user, plain string) (bool, string) {
	t.Helper()
	out, err := exec.Command(bin, "pw", "-t", hash, "-u", user, "-p", plain).CombinedOutput()
	return err == nil && strings.Contains(string(out), "(verified)"), strings.TrimSpace(string(out))
}

// TestGeneratedVerifyInDovecot: what Generate makes, the real doveadm
// verifies, and it refuses a wrong password.
func TestGeneratedVerifyInDovecot(t *testing.T) {
	t.Parallel() // the slow ones (Argon2, doveadm) overlap
	bin := doveadm(t)
	type gen struct {
		scheme string
		rounds int
	}
	var gens []gen
	for _, s := range Schemes() {
		gens = append(gens, gen{s, 0})
	}
	gens = append(gens,
		gen{"sha256-crypt", 1000}, gen{"SHA512-CRYPT", 20000}, gen{"BLF-CRYPT", 4}, gen{"CRYPT", 6},
		gen{"PBKDF2", 1234}, gen{"SCRAM-SHA-256", 5000}, gen{"ARGON2ID", 1}, gen{"ARGON2I", 3},
		gen{"SHA.HEX", 0}, gen{"SSHA256.b64", 0}, gen{"PLAIN-MD5.BASE64", 0}, gen{"SHA512-CRYPT.B64", 0},
		gen{"CRAM-MD5.b64", 0}, gen{"PLAIN.HEX", 0},
	)
	const user = "first.last@example.com@realm"
	for i, g := range gens {
		for j, pw := range testPasswords {
			if i >= len(Schemes()) && j%2 == 1 {
				continue // variants: two passwords are enough
			}
			h, err := Generate(g.scheme, pw, Params{User: user, Rounds: g.rounds})
			if err != nil {
				t.Errorf("Generate(%s, r=%d): %v", g.scheme, g.rounds, err)
				continue
			}
			if ok, out := doveadmVerifies(t, bin, h, user, pw); !ok {
				t.Errorf("doveadm pw -t %q -p %q: %s", h, pw, out)
			}
			if pw == testPasswords[0] {
				if ok, _ := doveadmVerifies(t, bin, h, user, "X"+pw); ok {
					t.Errorf("doveadm verified %q with a wrong password", h)
				}
			}
		}
	}
	// OTP with the algorithms doveadm does not generate.
	for _, algo := range []string{"md4", "md5"} {
		newHash := md5.New
		if algo == "md4" {
			newHash = md4.New
		}
		h := "{OTP}" + algo + " 99 Seed42 " + hex.EncodeToString(otpCompute(newHash, "Seed42", "pass phrase", 99))
		if ok, out := doveadmVerifies(t, bin, h, user, "pass phrase"); !ok {
			t.Errorf("doveadm pw -t %q: %s", h, out)
		}
		if ok, err := Verify(h, "pass phrase", Params{}); !ok || err != nil {
			t.Errorf("Verify(%q) = %v, %v", h, ok, err)
		}
	}
}

// TestSchemesMatchDoveadm: we support exactly what `doveadm pw -l` lists.
func TestSchemesMatchDoveadm(t *testing.T) {
	bin := doveadm(t)
	out, err := exec.Command(bin, "pw", "-l").Output()
	if err != nil {
		t.Fatal(err)
	}
	theirs := strings.Fields(string(out))
	ours := map[string]bool{}
	for _, s := range Schemes() {
		ours[s] = true
	}
	for _, s := range theirs {
		if !ours[s] {
			t.Errorf("doveadm lists %s, we do not", s)
		}
		delete(ours, s)
	}
	for s := range ours {
		t.Errorf("we list %s, doveadm does not", s)
	}
}
