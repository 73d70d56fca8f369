// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"
)

const doveadmBase = `
passdb:
  - driver: static
    args: proxy=y nopassword=y
director:
  backends: [127.0.0.11, 127.0.0.12]
listen:
  - {protocol: imap, address: 127.0.0.1:10143}
  - {protocol: doveadm, address: "10.0.0.1:2425"}
  - {protocol: doveadm, address: /run/maildirector/doveadm-server, mode: "0600"}
`

func TestDoveadm(t *testing.T) {
	c, err := Parse([]byte(doveadmBase + "doveadm: {password: secret}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Doveadm.Port != DefaultDoveadmPort || c.Doveadm.Password != "secret" {
		t.Fatalf("doveadm: %+v", c.Doveadm)
	}
	tcp, unix := c.Listen[1], c.Listen[2]
	if tcp.Service() != "doveadm" || tcp.TLS != "none" {
		t.Fatalf("listener: %+v", tcp)
	}
	// Its password opens every mailbox: TCP is loopback-only unless the
	// operator opens it.
	if got := tcp.AllowNetworks; len(got) != 2 || got[0] != "127.0.0.0/8" {
		t.Fatalf("allow_networks default: %q", got)
	}
	if unix.AllowNetworks != nil || unix.SocketMode() != 0o600 {
		t.Fatalf("unix listener: %+v", unix)
	}

	c, err = Parse([]byte(doveadmBase + "doveadm: {password: secret, port: 12425}\n"))
	if err != nil || c.Doveadm.Port != 12425 {
		t.Fatalf("port: %v %+v", err, c)
	}
	for conf, want := range map[string]string{
		"":                                      "listen[1]: a doveadm listener needs doveadm.password",
		"doveadm: {password: x, port: 70000}\n": "doveadm.port: 70000 is not a port",
		"doveadm: {password: x, portt: 2425}\n": "portt",
		"doveadm: {port: 2425}\n":               "listen[2]: a doveadm listener needs doveadm.password",
	} {
		if _, err := Parse([]byte(doveadmBase + conf)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want %q", conf, err, want)
		}
	}
	// Without a doveadm listener no password is needed.
	if _, err := Parse([]byte(issueExample)); err != nil {
		t.Fatal(err)
	}
}
