// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/maildirector/maildirector/internal/gatewaytest"
)

// logBuffer collects a logger's text output; handlers write from many
// goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestDefaultRealm: with auth.default_realm, a login name without "@" is
// one user with the "@realm" one, whatever the way in (LOGIN, AUTHENTICATE
// PLAIN, a master login "user*master"): the backend gets that name, and
// every log line, failures included, shows it and never the name typed.
func TestDefaultRealm(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	e := start(t, func(s *setup) {
		chain := gatewaytest.StaticChain(t, "proxy=y password=secret")
		chain.DefaultRealm, chain.MasterSeparator = "example.org", "*"
		s.pipeline.Passdb, s.pipeline.Log, s.log = chain, log, log
	})
	e.connect().Do("a LOGIN User0042 secret", "a "+fakeOK)
	e.connect().Do("b AUTHENTICATE PLAIN "+b64("\x00user0042\x00secret"), "b "+fakeOK)
	e.connect().Do("c LOGIN user0042*Admin anything", "c "+fakeOK)
	c := e.connect()
	c.Do("d LOGIN USER0042 wrong", "d "+authFailed)
	c.Do("e AUTHENTICATE PLAIN "+b64("\x00user0042\x00wrong"), "e "+authFailed)
	e.backend.expectReceived(t,
		anyID, `L LOGIN "user0042@example.org" "secret"`,
		anyID, `L LOGIN "user0042@example.org" "secret"`,
		// The master's name gets the realm too, as in Dovecot.
		anyID, "L AUTHENTICATE PLAIN "+b64("user0042@example.org\x00admin@example.org\x00anything"))
	waitFor(t, func() bool { return strings.Count(logs.String(), `msg="authentication failed"`) == 2 })
	var users []string
	for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "user="); ok {
				users = append(users, v)
			}
		}
	}
	if len(users) < 6 {
		t.Fatalf("too few log lines name the user:\n%s", logs)
	}
	for _, u := range users {
		if u != "user0042@example.org" {
			t.Errorf("a log line names user=%s, want user0042@example.org:\n%s", u, logs)
		}
	}
}
