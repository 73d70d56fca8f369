// SPDX-License-Identifier: Apache-2.0

package imap

import (
	"testing"
)

// BenchmarkLogin is one whole login through the gateway to the fake
// backend (connect, greeting, LOGIN, LOGOUT relayed), one client at a
// time: the gateway's own cost per login, allocations included, without
// a real backend's. The side-by-side figures against Dovecot come from
// scripts/bench.
//
//	go test ./gateway/imap -run '^$' -bench Login -benchmem
func BenchmarkLogin(b *testing.B) {
	e := start(b)
	b.ReportAllocs()
	for b.Loop() {
		c := e.connect()
		c.Do("a LOGIN bob secret", "a "+fakeOK)
		c.Conn.Close()
	}
}
