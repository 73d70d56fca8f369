// SPDX-License-Identifier: Apache-2.0

package config

import (
	"strings"
	"testing"
)

func TestAdmin(t *testing.T) {
	const base = `
listen: [{protocol: imap, address: "127.0.0.1:143"}]
passdb: [{driver: static, args: nopassword}]
director: {backends: [127.0.0.11]}
`
	c, err := Parse([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.Socket != "" || c.Admin.Listen != "" || c.Admin.SocketPerm() != 0o600 {
		t.Fatalf("admin defaults %+v", c.Admin)
	}
	c, err = Parse([]byte(base + `admin:
  socket: /run/maildirector/director-admin
  socket_mode: "0660"
  listen: 127.0.0.1:8080
  token_file: /etc/maildirector/admin-tokens
  tls: {cert: /etc/maildirector/admin.pem, key: /etc/maildirector/admin.key}
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Admin.SocketPerm() != 0o660 || c.Admin.Listen != "127.0.0.1:8080" || c.Admin.TLS.Key == "" {
		t.Fatalf("admin %+v", c.Admin)
	}
	for bad, want := range map[string]string{
		"{socket: relative/path}":                                       "admin.socket: \"relative/path\" is not an absolute path",
		"{socket: /" + strings.Repeat("d", 95) + "/s}":                  "too long for a UNIX socket",
		"{socket: /run/s, socket_mode: \"0999\"}":                       "admin.socket_mode",
		"{socket: /run/s, socket_mode: \"rw\"}":                         "admin.socket_mode",
		"{listen: \"localhost:8080\", token_file: /t}":                  "admin.listen: want IP:port",
		"{listen: \"127.0.0.1\", token_file: /t}":                       "admin.listen: want IP:port",
		"{listen: \"127.0.0.1:8080\"}":                                  "admin.token_file is needed",
		"{token_file: /t}":                                              "admin.token_file: only with admin.listen",
		"{tls: {cert: /c, key: /k}}":                                    "admin.tls: only with admin.listen",
		"{listen: \"127.0.0.1:8080\", token_file: /t, tls: {cert: /c}}": "admin.tls: cert and key go together",
		"{listen: \"127.0.0.1:8080\", token_file: /t, tokens: [x]}":     "field tokens not found",
	} {
		_, err := Parse([]byte(base + "admin: " + bad + "\n"))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("admin: %s: %v, want %q", bad, err, want)
		}
	}
}
