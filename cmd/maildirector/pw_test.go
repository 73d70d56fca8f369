// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/password"
)

func pw(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = runPw(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestPw(t *testing.T) {
	code, out, _ := pw(t, "", "-s", "ssha256", "-p", "pass word")
	h := strings.TrimSpace(out)
	if code != 0 || !strings.HasPrefix(h, "{SSHA256}") {
		t.Fatalf("generate: %d %q", code, out)
	}
	if ok, err := password.Verify(h, "pass word", password.Params{}); !ok || err != nil {
		t.Errorf("generated %q does not verify: %v %v", h, ok, err)
	}

	code, out, _ = pw(t, "pässwörd\n", "-s", "DIGEST-MD5", "-u", "user@realm")
	if ok, err := password.Verify(strings.TrimSpace(out), "pässwörd", password.Params{User: "user@realm"}); code != 0 || !ok || err != nil {
		t.Errorf("stdin + -u: %d %q %v %v", code, out, ok, err)
	}

	const sha = "{SHA}2oguq15ANCGsJCWKX31fllwpyEk=" // "pass word"
	if code, out, _ = pw(t, "", "-t", sha, "-p", "pass word"); code != 0 || out != sha+" (verified)\n" {
		t.Errorf("-t: %d %q", code, out)
	}
	if code, _, _ = pw(t, "wrong\n", "-t", sha); code != 1 {
		t.Errorf("-t, mismatch: exit %d, want 1", code)
	}
	if code, _, _ = pw(t, "", "-t", "{SSHA}AAAA", "-p", "x"); code != 2 {
		t.Errorf("-t, malformed: exit %d, want 2", code)
	}
	if code, out, _ = pw(t, "", "-l"); code != 0 || !strings.Contains(out, "SHA512-CRYPT") {
		t.Errorf("-l: %d %q", code, out)
	}
	if code, _, _ = pw(t, "", "-s", "NOPE", "-p", "x"); code != 2 {
		t.Errorf("unknown scheme: exit %d, want 2", code)
	}
	if code, _, _ = pw(t, ""); code != 2 {
		t.Errorf("no password: exit %d, want 2", code)
	}
	if code, out, _ = pw(t, "", "-p", "x"); code != 0 || !strings.HasPrefix(out, "{CRYPT}$2y$05$") {
		t.Errorf("default scheme: %d %q", code, out)
	}
}
