// SPDX-License-Identifier: Apache-2.0

package dovecotconf

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// parseTime reads a Dovecot time ("15 min", "1 hour", "30secs", "500ms")
// as settings_get_time does: one number, optional spaces, and a unit of
// which any prefix of its long names counts ("m", "mi", "min", "mins",
// "minutes"). A bare number is an error unless it is 0.
func parseTime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid time interval %q", s)
	}
	n, err := strconv.ParseUint(s[:i], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid time interval %q", s)
	}
	unit := strings.ToLower(strings.TrimLeft(s[i:], " "))
	if unit == "" {
		if n != 0 {
			return 0, fmt.Errorf("time interval %q is missing units (add e.g. 's' for seconds)", s)
		}
		return 0, nil
	}
	isPrefix := func(long ...string) bool {
		for _, l := range long {
			if strings.HasPrefix(l, unit) {
				return true
			}
		}
		return false
	}
	var d time.Duration
	switch unit[0] {
	case 's':
		d = time.Second
		if !isPrefix("secs", "seconds") {
			return 0, fmt.Errorf("invalid time interval %q", s)
		}
	case 'm':
		switch {
		case isPrefix("mins", "minutes"):
			d = time.Minute
		case isPrefix("msecs", "mseconds", "millisecs", "milliseconds"):
			d = time.Millisecond
		default:
			return 0, fmt.Errorf("invalid time interval %q", s)
		}
	case 'h':
		d = time.Hour
		if !isPrefix("hours") {
			return 0, fmt.Errorf("invalid time interval %q", s)
		}
	case 'd':
		d = 24 * time.Hour
		if !isPrefix("days") {
			return 0, fmt.Errorf("invalid time interval %q", s)
		}
	case 'w':
		d = 7 * 24 * time.Hour
		if !isPrefix("weeks") {
			return 0, fmt.Errorf("invalid time interval %q", s)
		}
	default:
		return 0, fmt.Errorf("invalid time interval %q", s)
	}
	return time.Duration(n) * d, nil
}

// formatDuration writes d the way a person would in maildirector's
// configuration: "15m", "1h", "90s", "500ms" (Go's String says "15m0s").
func formatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	for _, u := range []struct {
		d time.Duration
		s string
	}{{time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}, {time.Millisecond, "ms"}} {
		if d%u.d == 0 {
			return strconv.FormatInt(int64(d/u.d), 10) + u.s
		}
	}
	return d.String()
}

// parseSize reads a Dovecot size ("10M", "10 M", "512k", "1 GiB", "1024")
// as settings_get_size does.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	unit := strings.ToUpper(strings.TrimLeft(s[i:], " "))
	mult := int64(1)
	if unit != "" {
		switch unit[0] {
		case 'B':
			unit = unit[1:]
		case 'K', 'M', 'G', 'T':
			mult = 1 << (10 * (strings.IndexByte("KMGT", unit[0]) + 1))
			unit = strings.TrimPrefix(strings.TrimPrefix(unit[1:], "I"), "B")
		}
	}
	if unit != "" {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// formatSize writes a byte count in the largest unit maildirector's
// ByteSize reads that divides it exactly.
func formatSize(n int64) string {
	for _, u := range []struct {
		n int64
		s string
	}{{1 << 30, "G"}, {1 << 20, "M"}, {1 << 10, "k"}} {
		if n != 0 && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.s
		}
	}
	return strconv.FormatInt(n, 10)
}

// parseBool reads a Dovecot boolean as get_bool does: yes, y or 1; no.
func parseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "yes", "y", "1":
		return true, nil
	case "no":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean (yes or no)", s)
}

// splitList splits a Dovecot list setting on spaces and commas
// (t_strsplit_spaces(value, ", ")).
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(c rune) bool { return c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '\r' })
}
