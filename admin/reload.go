// SPDX-License-Identifier: Apache-2.0

package admin

import (
	"context"
	"strings"
)

// ReloadReport is what a configuration reload did.
type ReloadReport struct {
	OK bool `json:"ok"`
	// Problems are why the new configuration was refused (the old one
	// stays, untouched).
	Problems []string `json:"problems,omitempty"`
	// Restart lists changed settings that take effect only at the next
	// restart (the rest was applied).
	Restart []string `json:"restart,omitempty"`
	// Notes describe what was applied.
	Notes []string `json:"notes,omitempty"`
}

// Reloader re-reads and applies the gateway's configuration.
type Reloader func(ctx context.Context, by string) ReloadReport

// reloadLine renders r as the socket's one reply line: "OK" or "FAILED",
// then tab-separated items ("problem: ...", "restart: ...", "note: ...").
func reloadLine(r ReloadReport) string {
	var b strings.Builder
	if r.OK {
		b.WriteString("OK")
	} else {
		b.WriteString("FAILED")
	}
	for _, group := range []struct {
		label string
		items []string
	}{{"problem", r.Problems}, {"restart", r.Restart}, {"note", r.Notes}} {
		for _, it := range group.items {
			b.WriteString("\t" + group.label + ": " + tabEscape(it))
		}
	}
	b.WriteByte('\n')
	return b.String()
}

// ParseReloadLine reads a reply reloadLine wrote (for the reload tool).
func ParseReloadLine(line string) ReloadReport {
	fields := strings.Split(strings.TrimRight(line, "\r\n"), "\t")
	r := ReloadReport{OK: fields[0] == "OK"}
	for _, f := range fields[1:] {
		label, text, _ := strings.Cut(f, ": ")
		text = TabUnescape(text)
		switch label {
		case "problem":
			r.Problems = append(r.Problems, text)
		case "restart":
			r.Restart = append(r.Restart, text)
		default:
			r.Notes = append(r.Notes, text)
		}
	}
	if !r.OK && len(r.Problems) == 0 && fields[0] != "FAILED" {
		r.Problems = []string{strings.TrimSpace(line)}
	}
	return r
}
