// SPDX-License-Identifier: Apache-2.0

package password

import (
	"bufio"
	"os"
	"strings"
	"testing"
)

// vector is one line of testdata/doveadm-vectors.txt.
type vector struct {
	label, user, password, hash string
}

func (v vector) scheme() string {
	s, _, _ := strings.Cut(v.label, "/")
	s, _, _ = strings.Cut(s, ".")
	return strings.ToUpper(s)
}

func readVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open("testdata/doveadm-vectors.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []vector
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			t.Fatalf("doveadm-vectors.txt:%d: %d fields, want 4", n, len(f))
		}
		vs = append(vs, vector{f[0], f[1], f[2], f[3]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return vs
}

// TestDoveadmVectors: every hash made by the real doveadm verifies, and a
// wrong password (one more byte in front) does not.
func TestDoveadmVectors(t *testing.T) {
	t.Parallel() // the slow ones (Argon2, doveadm) overlap
	seen := map[string]int{}
	for _, v := range readVectors(t) {
		seen[v.scheme()]++
		p := Params{User: v.user}
		ok, err := Verify(v.hash, v.password, p)
		if err != nil || !ok {
			t.Errorf("%s %q %q: Verify = %v, %v; want true", v.label, v.password, v.hash, ok, err)
			continue
		}
		ok, err = Verify(v.hash, "X"+v.password, p)
		if err != nil || ok {
			t.Errorf("%s %q %q: Verify(wrong password) = %v, %v; want false", v.label, v.password, v.hash, ok, err)
		}
	}
	for _, s := range Schemes() {
		if seen[s] < 3 {
			t.Errorf("scheme %s has %d doveadm vectors, want at least 3", s, seen[s])
		}
	}
}
