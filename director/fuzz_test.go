// SPDX-License-Identifier: Apache-2.0

package director

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzParseHosts reads director backend specs (two of them, separated by
// a newline in the input, as YAML lists them). What it takes: canonical IP
// strings (the ring hashes them, so "127.000.0.1" must not slip in), each
// once, vhost counts within 0..MaxVHosts, ranges bounded; and each host,
// written back with Host.String, reads back as itself.
func FuzzParseHosts(f *testing.F) {
	for _, s := range []string{
		"127.0.0.11\n127.0.0.12",
		"127.0.0.20-127.0.0.22@fast 50\n::1@v6 0",
		"10.0.0.1 1000\n10.0.0.2 1001",
		"10.0.0.0-10.0.255.255",
		"192.0.2.255-192.0.3.1@edge",
		"2001:db8::ffff-2001:db8::1:1 7",
		"fe80::1%eth0@tag\nfe80::1%eth1",
		"::ffff:127.0.0.1\n127.0.0.1",
		"127.0.0.1@a@b -0",
		"mail1.example.com",
		"127.0.0.1 1 2",
		"127.0.0.1\n127.0.0.1@x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		specs := strings.Split(in, "\n")
		hosts, err := ParseHosts(specs)
		if err != nil {
			return
		}
		if len(hosts) > len(specs)*(maxRange+1) {
			t.Fatalf("%q gave %d hosts", in, len(hosts))
		}
		seen := map[string]bool{}
		for _, h := range hosts {
			a, err := netip.ParseAddr(h.IP)
			if err != nil || a.String() != h.IP {
				t.Fatalf("%q gave the IP %q, not in canonical form", in, h.IP)
			}
			if seen[h.IP] {
				t.Fatalf("%q gave %s twice", in, h.IP)
			}
			seen[h.IP] = true
			if h.VHosts < 0 || h.VHosts > MaxVHosts || h.Down {
				t.Fatalf("%q gave %+v", in, h)
			}
			back, err := ParseHosts([]string{h.String()})
			if err != nil || len(back) != 1 || back[0] != h {
				t.Fatalf("%q gave %+v, written %q, read back as %+v, %v", in, h, h.String(), back, err)
			}
		}
	})
}
