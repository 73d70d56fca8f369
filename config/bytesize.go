// SPDX-License-Identifier: Apache-2.0

package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a size in bytes, written as Dovecot writes sizes: a number
// with an optional unit (B, k, M, G; "10M", "512k", "1024").
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize reads "10M" and the like.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	if s != "" {
		switch unit := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(s[len(strings.TrimRight(s, "kKmMgGbB")):], "B"), "b")); unit {
		case "K":
			mult = 1 << 10
		case "M":
			mult = 1 << 20
		case "G":
			mult = 1 << 30
		}
		s = strings.TrimRight(s, "kKmMgGbB ")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size", s)
	}
	// A product past int64 would wrap around to a negative size.
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is too big a size", s)
	}
	return ByteSize(n * mult), nil
}
