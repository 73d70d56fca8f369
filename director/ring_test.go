// SPDX-License-Identifier: Apache-2.0

package director

import (
	"bufio"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/maildirector/maildirector/auth"
)

// TestRingMatchesDovecot23 replays vectors recorded from a real Dovecot
// 2.3.19 Director: testdata/dovecot23-ring/gen.sh starts a private
// single-director ring with each backend set (vhost counts changed with
// `doveadm director update`, hosts taken down with `doveadm director down`)
// and records, for 1,000 users, the "Hashed:" line of
// `doveadm director status USER`. Each file's header keeps the command and
// the director's own host table. Our ring must choose the same host for
// every user.
//
// The user's key is username_hash "%Lu" expanded as the director expands
// it (auth.Expand): the vectors include UTF-8 and mixed-case names
// ("Ärger@example.org", "ÄRGER@EXAMPLE.ORG", the KELVIN SIGN), which
// Dovecot lower-cases in ASCII only; Unicode lower-casing would move them.
func TestRingMatchesDovecot23(t *testing.T) {
	files, err := filepath.Glob("testdata/dovecot23-ring/*.tsv")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 3 {
		t.Fatalf("want at least 3 vector files, found %d", len(files))
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			hosts, vectors := readVectors(t, file)
			if len(vectors) < 1000 {
				t.Fatalf("only %d vectors", len(vectors))
			}
			nonASCII := 0
			for _, v := range vectors {
				if strings.ContainsFunc(v[0], func(r rune) bool { return r >= 0x80 }) {
					nonASCII++
				}
			}
			if nonASCII < 40 {
				t.Fatalf("only %d vectors with non-ASCII names", nonASCII)
			}
			ring := NewRing(hosts)
			mismatches := 0
			for _, v := range vectors {
				key, err := auth.Expand("%Lu", (&auth.Request{User: v[0]}).Vars(), nil)
				if err != nil {
					t.Fatal(err)
				}
				got, ok := ring.Lookup(UserHash(key))
				if !ok || got != v[1] {
					mismatches++
					if mismatches <= 5 {
						t.Errorf("user %s: we chose %s, Dovecot chose %s", v[0], got, v[1])
					}
				}
			}
			if mismatches > 0 {
				t.Errorf("%d of %d users differ", mismatches, len(vectors))
			}
		})
	}
}

// readVectors parses a vector file: "# backends: ip=vhosts[:down] ..." and
// "user<TAB>ip" lines.
func readVectors(t *testing.T, file string) ([]Host, [][2]string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var hosts []Host
	var vectors [][2]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# backends:"); ok {
			for _, spec := range strings.Fields(rest) {
				ip, v, _ := strings.Cut(spec, "=")
				v, state, _ := strings.Cut(v, ":")
				n, err := strconv.Atoi(v)
				if err != nil {
					t.Fatalf("bad backend spec %q", spec)
				}
				hosts = append(hosts, Host{IP: ip, VHosts: n, Down: state == "down"})
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, ip, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("bad vector line %q", line)
		}
		vectors = append(vectors, [2]string{user, ip})
	}
	if len(hosts) == 0 {
		t.Fatal("no '# backends:' line")
	}
	return hosts, vectors
}
