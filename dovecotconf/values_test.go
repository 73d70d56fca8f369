// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"15 min": 15 * time.Minute, "15 mins": 15 * time.Minute, "15m": 15 * time.Minute, "2 minutes": 2 * time.Minute,
		"1 hour": time.Hour, "1 hours": time.Hour, "1h": time.Hour, "30secs": 30 * time.Second, "30 s": 30 * time.Second,
		"3 seconds": 3 * time.Second, "1 day": 24 * time.Hour, "2 weeks": 14 * 24 * time.Hour, "0": 0,
		"500 ms": 500 * time.Millisecond, "500 msecs": 500 * time.Millisecond, "2 milliseconds": 2 * time.Millisecond,
		"1 SEC": time.Second,
	} {
		got, err := parseTime(in)
		if err != nil || got != want {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "15", "min", "1 year", "1 secondss", "1 mx", "-1 s", "99999999999 s", "1 x"} {
		if d, err := parseTime(in); err == nil {
			t.Errorf("parseTime(%q) = %v, want an error", in, d)
		}
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0s", 15 * time.Minute: "15m", 90 * time.Minute: "90m", time.Hour: "1h", 24 * time.Hour: "24h",
		2 * time.Second: "2s", 1500 * time.Millisecond: "1500ms", time.Microsecond: "1µs",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"10M": 10 << 20, "10 M": 10 << 20, "10 MB": 10 << 20, "10MiB": 10 << 20, "512k": 512 << 10, "1 G": 1 << 30,
		"1T": 1 << 40, "1024": 1024, "7 B": 7, "0": 0, "4096kib": 4 << 20,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "M", "10 X", "10 MM", "-1", "99999999999999 T"} {
		if n, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %v, want an error", in, n)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0", 1000: "1000", 1024: "1k", 10 << 20: "10M", 3 << 30: "3G", 1 << 40: "1024G", 1536 << 10: "1536k"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseBool(t *testing.T) {
	for in, want := range map[string]bool{"yes": true, "YES": true, "y": true, "1": true, "no": false, "No": false} {
		if got, err := parseBool(in); err != nil || got != want {
			t.Errorf("parseBool(%q) = %v, %v", in, got, err)
		}
	}
	// Dovecot's get_bool takes neither.
	for _, in := range []string{"n", "0", "true", ""} {
		if _, err := parseBool(in); err == nil {
			t.Errorf("parseBool(%q): want an error", in)
		}
	}
}

func TestSplitList(t *testing.T) {
	got := splitList(" 10.0.0.0/8,192.0.2.1 ,, ::1\n")
	if len(got) != 3 || got[0] != "10.0.0.0/8" || got[1] != "192.0.2.1" || got[2] != "::1" {
		t.Errorf("got %q", got)
	}
}
