// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/maildirector/maildirector/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/cases")

// importCase translates testdata/cases/NAME, a Dovecot configuration laid
// out as on the Director it came from (etc/dovecot/dovecot.conf, and
// director-dump.txt beside it when the case has one).
func importCase(t *testing.T, dir string) *Result {
	t.Helper()
	var opt TranslateOptions
	if d, err := os.ReadFile(filepath.Join(dir, "director-dump.txt")); err == nil {
		opt.Dump, opt.DumpName = string(d), "director-dump.txt"
	}
	res, err := Import("/etc/dovecot/dovecot.conf", Options{Root: dir, Getenv: func(string) string { return "" }}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", path, got)
	}
}

func notesText(notes []Note) []byte {
	var b strings.Builder
	for _, n := range notes {
		b.WriteString(n.String() + "\n")
	}
	return []byte(b.String())
}

// TestCases compares each hand-written Director configuration's
// translation with its expected YAML and notes, and loads the YAML as
// maildirector would.
func TestCases(t *testing.T) {
	dirs, err := filepath.Glob("testdata/cases/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			res := importCase(t, dir)
			golden(t, filepath.Join(dir, "want.yaml"), res.YAML)
			golden(t, filepath.Join(dir, "want.notes"), notesText(res.Notes))
			p := filepath.Join(t.TempDir(), "maildirector.yaml")
			if err := os.WriteFile(p, res.YAML, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := config.Load(p); err != nil {
				t.Errorf("the translation does not load: %v", err)
			}
		})
	}
}

// TestEveryMappedKeyCovered keeps the cases honest: each maildirector key
// the translation can write appears in at least one expected output.
func TestEveryMappedKeyCovered(t *testing.T) {
	mapped := []string{
		"listen.protocol", "listen.address", "listen.tls", "listen.haproxy", "listen.allow_networks",
		"haproxy_trusted_networks", "haproxy_timeout",
		"tls.cert", "tls.key", "tls.client_ca_file", "tls.cert_username_field", "tls.sni.cert", "tls.sni.key",
		"trusted_networks", "allow_plaintext",
		"auth.default_realm", "auth.username_format", "auth.master_user_separator", "auth.username_chars",
		"auth.mechanisms", "auth.anonymous_username", "auth.realm",
		"auth.cache.size", "auth.cache.ttl", "auth.cache.negative_ttl",
		"passdb.driver", "passdb.args", "passdb.name", "passdb.mechanisms", "passdb.username_filter",
		"passdb.default_fields", "passdb.override_fields", "passdb.skip",
		"passdb.result_success", "passdb.result_failure", "passdb.result_internalfail",
		"passdb.pass", "passdb.master", "passdb.deny",
		"userdb.driver", "userdb.args", "userdb.name", "userdb.skip", "userdb.result_success",
		"userdb.result_failure", "userdb.result_internalfail", "userdb.default_fields", "userdb.override_fields",
		"director.backends", "director.user_expire", "director.username_hash",
		"backend.ports.lmtp", "backend.timeout", "backend.connect_attempts", "backend.tls_ca_file",
		"backend.tls_cert", "backend.tls_key", "backend.master_from_passdb",
		"lmtp.recipient_delimiter", "lmtp.hostname", "sieve.extensions", "sieve.notify",
		"limits.auth_failure_delay", "limits.max_userip_connections",
	}
	seen := map[string]bool{}
	dirs, _ := filepath.Glob("testdata/cases/*")
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, "want.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(data, &doc); err != nil {
			t.Fatal(err)
		}
		collectKeys(&doc, "", seen)
	}
	for _, k := range mapped {
		if !seen[k] {
			t.Errorf("no case writes %s", k)
		}
	}
	var extra []string
	for k := range seen {
		if !contains(mapped, k) {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("keys written but not in this test's list: %v", extra)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func collectKeys(n *yaml.Node, prefix string, seen map[string]bool) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			collectKeys(c, prefix, seen)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if prefix != "" {
				k = prefix + "." + k
			}
			seen[k] = true
			collectKeys(n.Content[i+1], k, seen)
		}
	}
	// Parent keys of mappings are not leaves; keep only what the list names.
	for _, p := range []string{"listen", "tls", "tls.sni", "auth", "auth.cache", "passdb", "userdb", "director", "backend", "backend.ports", "lmtp", "sieve", "limits"} {
		delete(seen, p)
	}
}

// TestCasesAreDovecotConfigs has Dovecot's own doveconf read every case
// (a copy whose absolute paths point into a temporary directory), so
// that the cases stay configurations Dovecot 2.3 accepts.
func TestCasesAreDovecotConfigs(t *testing.T) {
	doveconf, err := exec.LookPath("doveconf")
	if err != nil {
		t.Skip("doveconf is not installed")
	}
	dirs, _ := filepath.Glob("testdata/cases/*")
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			root := t.TempDir()
			err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
				if err != nil {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				if fi.IsDir() {
					return os.MkdirAll(filepath.Join(root, rel), 0o755)
				}
				data, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				s := strings.NewReplacer(" /etc/", " "+root+"/etc/", "</etc/", "<"+root+"/etc/", "/usr/share/dovecot", root+"/usr/share/dovecot").Replace(string(data))
				return os.WriteFile(filepath.Join(root, rel), []byte(s), 0o644)
			})
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(doveconf, "-c", filepath.Join(root, "etc/dovecot/dovecot.conf"), "-n").CombinedOutput()
			if err != nil {
				t.Errorf("doveconf refuses it: %v\n%s", err, out)
			}
		})
	}
}
