// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/config"
	"github.com/maildirector/maildirector/director/store/memory"
)

// The cases of dovecotconf's golden tests: Director configurations laid
// out as on their machine, with the YAML and notes they must give.
const importCases = "../../dovecotconf/testdata/cases"

func runImport(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = cmdConfigImport(args, &out, &errb)
	return code, out.String(), errb.String()
}

func readTestFile(t *testing.T, p string) string {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestConfigImportStdout(t *testing.T) {
	dir := filepath.Join(importCases, "debian")
	code, out, errs := runImport("--root", dir, "/etc/dovecot/dovecot.conf")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if want := readTestFile(t, filepath.Join(dir, "want.yaml")); out != want {
		t.Errorf("stdout is not the expected YAML:\n%s", out)
	}
	// Standard error: every note as file:line: key: why, then a summary.
	notes := readTestFile(t, filepath.Join(dir, "want.notes"))
	if !strings.HasPrefix(errs, notes) {
		t.Errorf("stderr does not start with the notes:\n%s", errs)
	}
	n := strings.Count(notes, "\n")
	if summary := strings.TrimPrefix(errs, notes); !strings.HasPrefix(summary, "config import: "+strconv.Itoa(n)+" settings not translated (") || strings.Count(summary, "\n") != 1 {
		t.Errorf("summary: %q", summary)
	}
	if !strings.Contains(errs, "conf.d/10-director.conf:6: director_servers: not needed: ") {
		t.Errorf("director_servers is not listed as not needed:\n%s", errs)
	}
}

func TestConfigImportOutputFile(t *testing.T) {
	dir := filepath.Join(importCases, "dump")
	out := filepath.Join(t.TempDir(), "maildirector.yaml")
	// Flags may come after the file name.
	code, stdout, errs := runImport("--root", dir, "/etc/dovecot/dovecot.conf", "-o", out, "--dump", filepath.Join(dir, "director-dump.txt"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if stdout != "" {
		t.Errorf("stdout with -o: %q", stdout)
	}
	got := readTestFile(t, out)
	// The dump's name is the one given on the command line.
	want := strings.ReplaceAll(readTestFile(t, filepath.Join(dir, "want.yaml")), "from director-dump.txt:", "from "+filepath.Join(dir, "director-dump.txt")+":")
	if got != want {
		t.Errorf("%s:\n%s\nwant\n%s", out, got, want)
	}
	if !strings.Contains(errs, "; wrote "+out+";") {
		t.Errorf("stderr does not name the file: %s", errs)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("mode: %v %v", fi.Mode(), err)
	}
}

func TestConfigImportErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("ssl = yes\nservice imap-login {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badDump := filepath.Join(dir, "dump.txt")
	if err := os.WriteFile(badDump, []byte("doveadm director add 10.0.0.1 lots\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lab := filepath.Join(importCases, "lab")
	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"no file", nil, 2, "usage: maildirector config import"},
		{"two files", []string{"a.conf", "b.conf"}, 2, "usage:"},
		{"unknown flag", []string{"-x", "a.conf"}, 2, "flag provided but not defined"},
		{"help", []string{"-h"}, 0, "usage:"},
		{"missing", []string{filepath.Join(dir, "none.conf")}, 1, "no such file or directory"},
		{"syntax", []string{bad}, 1, bad + ":2: missing '}'"},
		{"missing dump", []string{"--dump", filepath.Join(dir, "none.txt"), "--root", lab, "/etc/dovecot/dovecot.conf"}, 1, "no such file"},
		{"bad dump", []string{"--dump", badDump, "--root", lab, "/etc/dovecot/dovecot.conf"}, 1, badDump + ":1: not a line of"},
		{"unwritable", []string{"-o", filepath.Join(dir, "no", "such", "dir.yaml"), "--root", lab, "/etc/dovecot/dovecot.conf"}, 1, "no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runImport(tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.err) {
				t.Errorf("exit %d, want %d; stderr %q, want it to contain %q", code, tc.code, errs, tc.err)
			}
			if code != 0 && out != "" {
				t.Errorf("stdout on failure: %q", out)
			}
		})
	}
}

// TestConfigImportPassesConfigCheck imports every case as it would be
// imported on its own machine (a copy whose absolute paths point into a
// temporary directory, read without --root), then builds the result the
// way "maildirector config check" does: .conf.ext files parsed,
// certificates loaded, mechanisms checked.
func TestConfigImportPassesConfigCheck(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join(importCases, "*"))
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, c := range cases {
		t.Run(filepath.Base(c), func(t *testing.T) {
			root := t.TempDir()
			copyRewritten(t, c, root)
			args := []string{filepath.Join(root, "etc/dovecot/dovecot.conf")}
			if _, err := os.Stat(filepath.Join(root, "director-dump.txt")); err == nil {
				args = append(args, "--dump", filepath.Join(root, "director-dump.txt"))
			}
			code, out, errs := runImport(args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			p := filepath.Join(root, "maildirector.yaml")
			if err := os.WriteFile(p, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(p)
			if err != nil {
				t.Fatalf("load: %v\n%s", err, out)
			}
			makeCertificates(t, cfg)
			a, err := build(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), memory.New(), nil)
			if err != nil {
				t.Fatalf("config check would fail: %v\n%s", err, out)
			}
			a.front.auth.Close()
		})
	}
}

// copyRewritten copies a case into root, pointing its absolute paths
// (/etc/..., /usr/share/dovecot/...) into root.
func copyRewritten(t *testing.T, from, root string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(root, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := strings.NewReplacer(" /etc/", " "+root+"/etc/", "</etc/", "<"+root+"/etc/", "/usr/share/dovecot", root+"/usr/share/dovecot").Replace(string(data))
		return os.WriteFile(dst, []byte(s), 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// makeCertificates writes a throwaway certificate and key wherever cfg
// wants one that the case does not ship.
func makeCertificates(t *testing.T, cfg *config.Config) {
	t.Helper()
	pairs := [][2]string{{cfg.TLS.Cert, cfg.TLS.Key}, {cfg.Backend.TLSCert, cfg.Backend.TLSKey}}
	for _, s := range cfg.TLS.SNI {
		pairs = append(pairs, [2]string{s.Cert, s.Key})
	}
	for _, ca := range []string{cfg.TLS.ClientCAFile, cfg.Backend.TLSCAFile} {
		pairs = append(pairs, [2]string{ca, ""})
	}
	for _, p := range pairs {
		if p[0] == "" {
			continue
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "import test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			DNSNames: []string{"mail.example.com"}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		write := func(path, typ string, b []byte) {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		write(p[0], "CERTIFICATE", der)
		if p[1] != "" {
			write(p[1], "EC PRIVATE KEY", kder)
		}
	}
}
