// SPDX-License-Identifier: Apache-2.0

package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/maildirector/maildirector/auth"
	"github.com/maildirector/maildirector/director"
	"github.com/maildirector/maildirector/director/store/embedded"
	"github.com/maildirector/maildirector/director/store/etcdstore"
)

// TestDirectorMapUsesTheOneName: director map completes the name as a
// login does (auth.default_realm, then auth.username_format), prints it,
// and hashes it into the ring.
func TestDirectorMapUsesTheOneName(t *testing.T) {
	conf := realmConf(t)
	hosts, err := director.ParseHosts([]string{"127.0.0.11", "127.0.0.12"})
	if err != nil {
		t.Fatal(err)
	}
	for _, arg := range []string{"user0042", "USER0042", "user0042@example.org"} {
		var out, errb bytes.Buffer
		code := cmdDirector([]string{"map", "-c", conf, arg}, &out, &errb)
		key := "user0042@example.org"
		ip, _ := director.NewRing(hosts).Lookup(director.UserHash(auth.LowerASCII(key)))
		want := fmt.Sprintf("user:     %s\nhash:     %08x (of %q)\nbackend:  %s\n", key, director.UserHash(key), key, ip)
		if code != 0 || !strings.HasPrefix(out.String(), want) {
			t.Errorf("director map %s: exit %d\n%s%s\nwant\n%s", arg, code, out.String(), errb.String(), want)
		}
	}
}

// TestDirectorMapShowsStickyAssignments: with an embedded store (here
// started by the test, as a running serve would have), director map reads
// the stored backends and the user's live assignment, and says why.
func TestDirectorMapShowsStickyAssignments(t *testing.T) {
	dataDir, err := os.MkdirTemp("", "mdmap")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dataDir)
	conf := filepath.Join(t.TempDir(), "maildirector.yaml")
	os.WriteFile(conf, []byte(`listen: [{protocol: imap, address: "127.0.0.1:10143"}]
auth: {default_realm: example.org}
passdb: [{driver: static, args: "proxy=y nopassword=y"}]
director:
  backends: [127.0.0.11, 127.0.0.12]
  data_dir: `+dataDir+"\n"), 0o600)
	m, err := embedded.Start(embedded.Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s, err := etcdstore.New(etcdstore.Config{Endpoints: []string{embedded.Endpoint(dataDir)}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	hosts, _ := director.ParseHosts([]string{"127.0.0.11", "127.0.0.12"})
	if err := s.Start(ctx, hosts, "test"); err != nil {
		t.Fatal(err)
	}
	ring := director.NewRing(hosts)
	hashed, _ := ring.Lookup(director.UserHash("sticky@example.org"))
	other := map[string]string{"127.0.0.11": "127.0.0.12", "127.0.0.12": "127.0.0.11"}[hashed]
	now := time.Now()
	if _, _, err := s.Claim(ctx, "/sticky@example.org", director.Assignment{Backend: other, Expires: now.Add(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := cmdDirector([]string{"map", "-c", conf, "sticky"}, &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "backend:  "+other+"\nreason:   sticky (assigned until ") ||
		!strings.Contains(out.String(), "the ring would now say "+hashed) {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := cmdDirector([]string{"map", "-c", conf, "fresh"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "hashed (the Director ring)") {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errb.String())
	}
	// The users of a host, by name, with their hashes.
	out.Reset()
	hash := fmt.Sprintf("%08x", director.UserHash("sticky@example.org"))
	if code := cmdDirector([]string{"map", "-c", conf, "--hash", other}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "sticky@example.org") || !strings.Contains(out.String(), hash+" "+other) {
		t.Fatalf("map %s: exit %d\n%s%s", other, code, out.String(), errb.String())
	}
	out.Reset()
	if code := cmdDirector([]string{"map", "-c", conf, hashed}, &out, &errb); code != 0 || strings.Contains(out.String(), "sticky@") {
		t.Fatalf("map %s: exit %d\n%s%s", hashed, code, out.String(), errb.String())
	}
}
