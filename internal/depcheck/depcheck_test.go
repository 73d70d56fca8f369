// SPDX-License-Identifier: Apache-2.0

// Package depcheck keeps the import directions of ARCHITECTURE.md true.
package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/maildirector/maildirector"

// allowed lists, per package (prefix match on sub-packages where noted),
// which packages of ours it may import.
var allowed = map[string][]string{
	"auth":                     {},
	"config":                   {},
	"password":                 {},
	"passdb":                   {"auth", "password"},
	"passdb/passdbtest":        {"auth", "passdb"},
	"userdb":                   {"auth", "passdb"},
	"db/static":                {"auth"},
	"db/ldap":                  {"auth"},
	"db/sql":                   {"auth"},
	"mechs":                    {"auth", "password"},
	"oauth":                    {"auth", "mechs"},
	"director":                 {"auth"},
	"director/store/memory":    {"director"},
	"director/store/etcdstore": {"director"},
	"director/store/embedded":  {},
	"director/storetest":       {"director", "auth"},
	"director/health":          {"director", "auth"},
	"gateway":                  {"auth", "director", "mechs"},
	"gateway/imap":             {"gateway", "mechs", "auth"},
	"gateway/pop3":             {"gateway", "mechs", "auth"},
	"gateway/sieve":            {"gateway", "mechs", "auth"},
	"gateway/lmtp":             {"gateway", "auth", "director"},
	"gateway/doveadm":          {"gateway", "auth", "internal/tabesc"},
	"admin":                    {"director", "auth", "internal/tabesc"},
	"metrics":                  {"auth", "director", "director/health", "gateway"},
	"statuspage":               {},
	"dovecotconf":              {"config"},
}

// TestImportDirections fails when a package imports one of ours that it
// may not (dependencies point down, never up), or when a package of ours
// is missing from the table.
func TestImportDirections(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		if pkg == "" || strings.HasPrefix(pkg, "cmd/") || strings.HasPrefix(pkg, "integration") || strings.HasPrefix(pkg, "internal/") {
			continue // the binary, the tests and this check may import anything
		}
		rules, ok := allowed[pkg]
		if !ok {
			t.Errorf("package %s is not in depcheck's table: add it with the imports it may have", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			ours, isOurs := strings.CutPrefix(imp, module+"/")
			if !isOurs {
				continue
			}
			if !contains(rules, ours) {
				t.Errorf("%s imports %s, which ARCHITECTURE.md's direction forbids", pkg, ours)
			}
		}
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
