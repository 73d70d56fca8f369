// SPDX-License-Identifier: Apache-2.0

package sql

import (
	"strings"
	"testing"
	"time"
)

func TestParseSettings(t *testing.T) {
	s, err := ParseSettings(map[string]string{
		"driver":              "mysql",
		"connect":             `host=db1.example.com host=/run/mysqld/mysqld.sock dbname=mail user=dovecot password="p w" port=3307 connect_timeout=2 read_timeout=3 maxconns=7`,
		"password_query":      "SELECT password FROM users WHERE userid = '%u'",
		"user_query":          "SELECT home FROM users WHERE userid = '%u'",
		"update_query":        "UPDATE x",
		"default_pass_scheme": "SHA512-CRYPT",
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Hosts) != 2 || s.Hosts[0].Addr != "db1.example.com:3307" || s.Hosts[1].Net != "unix" {
		t.Fatalf("hosts %+v %+v", s.Hosts[0], s.Hosts[1])
	}
	h := s.Hosts[0]
	if h.User != "dovecot" || h.Passwd != "p w" || h.DBName != "mail" || h.Timeout != 2*time.Second || h.ReadTimeout != 3*time.Second || s.MaxConns != 7 {
		t.Fatalf("config %+v", h)
	}
	if s.DefaultPassScheme != "SHA512-CRYPT" || len(s.Ignored) != 1 {
		t.Fatalf("settings %+v", s)
	}
	if _, err := New(s); err != nil {
		t.Fatal(err)
	}
}

func TestParseSettingsErrors(t *testing.T) {
	_, err := ParseSettings(map[string]string{"driver": "pgsql", "connect": "dbname=x bogus=1 port=abc", "passwd_query": "x"})
	for _, want := range []string{"pgsql", "bogus", "port", "passwd_query", "no host="} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q: %v", want, err)
		}
	}
}
