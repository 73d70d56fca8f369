// SPDX-License-Identifier: Apache-2.0

package director

import "testing"

func TestParseHosts(t *testing.T) {
	hosts, err := ParseHosts([]string{"127.0.0.11", "127.0.0.20-127.0.0.22@fast 50", "::1@v6 0"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Host{
		{IP: "127.0.0.11", VHosts: 100},
		{IP: "127.0.0.20", Tag: "fast", VHosts: 50},
		{IP: "127.0.0.21", Tag: "fast", VHosts: 50},
		{IP: "127.0.0.22", Tag: "fast", VHosts: 50},
		{IP: "::1", Tag: "v6", VHosts: 0},
	}
	if len(hosts) != len(want) {
		t.Fatalf("got %+v", hosts)
	}
	for i := range want {
		if hosts[i] != want[i] {
			t.Errorf("host %d = %+v, want %+v", i, hosts[i], want[i])
		}
	}
	for _, bad := range []string{"mail1.example.com", "127.0.0.1 1001", "127.0.0.1 -1", "127.0.0.2-127.0.0.1",
		"10.0.0.0-10.0.255.255", "127.0.0.1 1 2", ""} {
		if _, err := ParseHosts([]string{bad}); err == nil {
			t.Errorf("ParseHosts(%q): no error", bad)
		}
	}
	if _, err := ParseHosts([]string{"127.0.0.1", "127.0.0.1@x"}); err == nil {
		t.Error("duplicate host accepted")
	}
}
